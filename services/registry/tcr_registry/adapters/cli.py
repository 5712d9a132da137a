"""`tcr-registry`: operations on the registry's database (the service itself runs under uvicorn)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer
from rich.console import Console

from tcr_registry.adapters.persistence.event_store import Registry
from tcr_registry.adapters.persistence.migrate import upgrade
from tcr_registry.settings import RegistrySettings

app = typer.Typer(help="tcr registry operations (技术合同登记)", no_args_is_help=True)
console = Console()


@app.command()
def migrate() -> None:
    """Create or upgrade the registry's tables (alembic), and the event store's own tables."""
    settings = RegistrySettings()
    upgrade(settings.database)
    Registry(env=settings.database.eventsourcing_env()).close()
    console.print(f"[green]registry database is up to date[/green] ({settings.database.url.split('@')[-1]})")


@app.command()
def head() -> None:
    """Print the highest position in the event log."""
    settings = RegistrySettings()
    registry = Registry(env=settings.database.eventsourcing_env())
    console.print(registry.recorder.max_notification_id() or 0)
    registry.close()


@app.command("rotate-master-key")
def rotate_master_key() -> None:
    """Seal everything sealed at rest again with TCR_MASTER_KEY (the old key in TCR_PREVIOUS_MASTER_KEY)."""
    from sqlalchemy import create_engine

    from tcr_registry.adapters.persistence.key_rotation import rotate

    settings = RegistrySettings()
    upgrade(settings.database)
    engine = create_engine(settings.database.sync_url)
    try:
        for done in rotate(engine, settings.master()):
            console.print(f"{done.table}: {done.resealed} value(s) sealed again")
    finally:
        engine.dispose()


@app.command("import")
def import_(
    file: Path = typer.Argument(
        ..., exists=True, dir_okay=False, help="The batch list: CSV (UTF-8, BOM or not) or XLSX"
    ),
    point: str = typer.Option(..., "--point", help="The id of the registration point the contracts are registered by"),
    errors: Path | None = typer.Option(None, help="Where to write the rejected rows (default: FILE.rejected.csv)"),
) -> None:
    """Import a batch list (登记清单): each row a contract, registered (and certified when it asks) under the same
    rules as POST /v1/contracts. Importing the same file again registers nothing twice."""
    from tcr_registry.adapters.imports.progress import run_with_progress

    settings = RegistrySettings()
    job = asyncio.run(run_with_progress(settings, file, point, errors, console))
    raise typer.Exit(0 if job is not None and job.status == "done" else 1)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", envvar="TCR_HOST", help="Address to listen on (0.0.0.0 in a container)"),
    port: int = typer.Option(8001, envvar="TCR_REGISTRY_PORT", help="Port to listen on"),
) -> None:
    """Run the registry service over HTTP (settings from the environment, TCR_*) until SIGTERM or Ctrl-C."""
    from tcr_shared.platform.collector import FEWER_COLLECTIONS
    from tcr_shared.platform.serving import serve as serve_http

    serve_http("tcr_registry.bootstrap:create_app", host, port, switch_interval=0.0005, gc_thresholds=FEWER_COLLECTIONS)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
