"""`tcr-subsidy`: rebuild the projection from zero, verify a rebuild equals the live state, migrate, simulate a
candidate rule book (what-if)."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tcr_shared.feeds.client import FeedClient
from tcr_shared.language.money import ZERO, format_money
from tcr_shared.platform.database import Database
from tcr_subsidy.adapters.feeds import NotifyingSink
from tcr_subsidy.adapters.persistence.migrate import upgrade
from tcr_subsidy.adapters.persistence.projection_lock import ProjectionBusy, held_for_rebuild
from tcr_subsidy.adapters.persistence.queries import Queries
from tcr_subsidy.adapters.persistence.store import wipe
from tcr_subsidy.adapters.rule_files import load_rule_book
from tcr_subsidy.application.projection import REGISTRY_FEED, AwardProjection
from tcr_subsidy.application.rebuild import replay
from tcr_subsidy.application.verification import AwardDifference, award_differences
from tcr_subsidy.domain.decision import Engine
from tcr_subsidy.settings import SubsidySettings

app = typer.Typer(help="tcr subsidy service: rebuild and verify the award projection.", no_args_is_help=True)
console = Console(stderr=True)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("registry position"),
        TimeElapsedColumn(),
        console=console,
    )


async def _replay_into(
    database: Database, settings: SubsidySettings, up_to: int | None, page_size: int, label: str
) -> int:
    db = database.async_engine()
    feed = FeedClient(settings.registry_url, settings.registry_feed_key, page_size=page_size)
    projection = AwardProjection(Engine(load_rule_book(*settings.rules_dirs)))
    try:
        with _progress() as progress:
            task = progress.add_task(label, total=up_to)

            def report(position: int, head: int) -> None:
                progress.update(task, completed=position, total=up_to or head)

            return await replay(
                NotifyingSink(db, projection, lambda: None),
                feed,
                up_to=up_to,
                page_size=page_size,
                batch_pages=settings.subsidy_batch_pages,  # decided while the sink commits the batch's pages
                progress=report,
            )
    finally:
        await feed.aclose()
        await db.dispose()


@app.command()
def migrate() -> None:
    """Create or upgrade the subsidy tables (also done on every start)."""
    settings = SubsidySettings()
    upgrade(settings.database)
    console.print(f"migrated {settings.database.url}")


@app.command()
def rebuild(
    page_size: int = typer.Option(1000, min=1, max=1000, help="Registry feed page size"),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation"),
) -> None:
    """Rebuild the live projection from zero: delete every decision and replay the registry feed.
    Stop the service first (a running service holds the projection and the rebuild refuses); it resumes
    following from the rebuilt position when started again."""
    settings = SubsidySettings()
    if not yes:
        typer.confirm(f"Delete every award in {settings.database.url} and replay the registry feed?", abort=True)

    async def run() -> int:
        await asyncio.to_thread(upgrade, settings.database)
        db = settings.database.async_engine()
        try:
            await wipe(db)
        finally:
            await db.dispose()
        return await _replay_into(settings.database, settings, None, page_size, "rebuilding")

    try:
        with held_for_rebuild(settings.database):
            position = asyncio.run(run())
    except ProjectionBusy as exc:
        console.print(f"[red]refused:[/red] {exc}")
        raise typer.Exit(2) from exc
    console.print(f"[green]rebuilt[/green] up to registry position {position}")


@app.command()
def verify(
    page_size: int = typer.Option(1000, min=1, max=1000, help="Registry feed page size"),
    scratch: Path | None = typer.Option(None, help="SQLite file to rebuild into (default: a temporary file)"),
) -> None:
    """Rebuild from zero into a scratch database, up to the live position, and compare every decision, award,
    cap and award event with the live state; list every award a rebuild would change, and by how much. Exit
    code 1 when they differ."""
    settings = SubsidySettings()
    live_db = settings.database

    async def run() -> bool:
        engine = live_db.async_engine()
        live = Queries(engine)
        try:
            await asyncio.to_thread(upgrade, live_db)
            position = await live.tracked_position(REGISTRY_FEED)
            with tempfile.TemporaryDirectory() as tmp:
                path = scratch or Path(tmp) / "subsidy-verify.db"
                if path.exists():
                    path.unlink()
                scratch_db = Database(f"sqlite:///{path.resolve()}")
                await asyncio.to_thread(upgrade, scratch_db)
                reached = await _replay_into(scratch_db, settings, position, page_size, "verifying")
                rebuilt_engine = scratch_db.async_engine()
                try:
                    rebuilt = await Queries(rebuilt_engine).snapshot()
                    rebuilt_awards = await Queries(rebuilt_engine).award_amounts()
                finally:
                    await rebuilt_engine.dispose()
            live_now = await live.snapshot(up_to=position)
            live_awards = await live.award_amounts()
            still = await live.tracked_position(REGISTRY_FEED) == position
        finally:
            await engine.dispose()
        console.print(f"live position {position}, rebuilt to {reached}")
        names = ["award_events"] + (["awards", "caps", "contracts", "skipped"] if still else [])
        if not still:
            console.print("[yellow]the live service moved on while verifying: comparing the award feed only")
        same = True
        for name in names:
            a, b = live_now[name], rebuilt[name]
            if a == b:
                console.print(f"  {name}: {len(a)} rows [green]identical[/green]")
            else:
                same = False
                first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
                console.print(
                    f"  {name}: [red]differs[/red] (live {len(a)} rows, rebuilt {len(b)}; first "
                    f"difference at row {first})"
                )
        if still:
            _print_differences(award_differences(live_awards, rebuilt_awards))
        return same

    ok = asyncio.run(run())
    console.print(
        "[green]verified: the rebuilt state equals the live one[/green]"
        if ok
        else "[red]the rebuilt state differs from the live one[/red]"
    )
    raise typer.Exit(0 if ok else 1)


def _print_differences(differences: list[AwardDifference], shown: int = 50) -> None:
    """Which awards a rebuild would change and by how much (the first `shown`), with the net total."""
    if not differences:
        return
    console.print(f"  awards a rebuild would change: {len(differences)}")
    for d in differences[:shown]:
        console.print(f"    {d.describe()}", markup=False, highlight=False, soft_wrap=True)
    if len(differences) > shown:
        console.print(f"    ... and {len(differences) - shown} more")
    total = sum((d.change for d in differences), ZERO)
    console.print(f"  net change if rebuilt: {'+' if total > 0 else ''}{format_money(total)}", soft_wrap=True)


@app.command()
def simulate(
    candidate: Path = typer.Argument(..., exists=True, dir_okay=False, help="Candidate rule set(s), YAML or JSON"),
    years: str = typer.Option(..., "--years", help="Policy years to compare, e.g. 2021-2025 or 2025"),
    xlsx: Path | None = typer.Option(None, "--xlsx", help="Also write the comparison to this XLSX file"),
    keep: bool = typer.Option(True, help="Keep the simulation in the subsidy database (to cite it later)"),
) -> None:
    """Decide the registry's history again under a candidate rule book, in memory (the live ledger, award feed and
    webhooks are untouched), and print it against the rules in force."""
    from tcr_subsidy.adapters import simulation_cli

    simulation_cli.run(SubsidySettings(), candidate, years, xlsx, keep, console)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", envvar="TCR_HOST", help="Address to listen on (0.0.0.0 in a container)"),
    port: int = typer.Option(8002, envvar="TCR_SUBSIDY_PORT", help="Port to listen on"),
) -> None:
    """Run the subsidy service over HTTP (settings from the environment, TCR_*) until SIGTERM or Ctrl-C."""
    from tcr_shared.platform.serving import serve as serve_http

    serve_http("tcr_subsidy.bootstrap:create_app", host, port)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
