"""`tcr-reporting`: operate the reporting service's projection.

  tcr-reporting migrate             run the database migrations
  tcr-reporting rebuild             forget every figure and rebuild from position 0 of both feeds
  tcr-reporting status              positions stored per feed; whether the projection lease is held

Rebuild forgets every table of the projection, then applies the feeds in batches of pages through the same sink the
service uses (figures and position in one transaction). It holds the projection lease while it runs and refuses
to start (exit 3) while a reporting service holds it: two writers of one projection would race."""

from __future__ import annotations

import asyncio

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from tcr_reporting.adapters.persistence.migrate import upgrade
from tcr_reporting.adapters.persistence.projection import registry_sink, reset, subsidy_sink
from tcr_reporting.adapters.persistence.projection_lease import ProjectionBusy, ProjectionLease
from tcr_reporting.adapters.persistence.store import FigureStore
from tcr_reporting.settings import ReportingSettings
from tcr_shared.feeds.client import FeedClient, FeedUnavailable

app = typer.Typer(help="tcr reporting service: projection maintenance", no_args_is_help=True)
console = Console(stderr=True)


def _settings(
    database_url: str | None, registry_url: str | None, subsidy_url: str | None, feed_key: str | None
) -> ReportingSettings:
    overrides = {
        k: v
        for k, v in {
            "reporting_database_url": database_url,
            "registry_url": registry_url,
            "subsidy_url": subsidy_url,
            "feed_key": feed_key,
        }.items()
        if v
    }
    return ReportingSettings(**overrides)


@app.command()
def migrate(database_url: str | None = typer.Option(None, envvar="TCR_REPORTING_DATABASE_URL")) -> None:
    """Bring the reporting database to the latest schema."""
    settings = _settings(database_url, None, None, None)
    upgrade(settings.database)
    console.print("[green]migrated[/green]")


async def _replay(name: str, client: FeedClient, sink, progress: Progress, batch_pages: int = 1) -> int:
    """Read the feed from 0 to its head; up to `batch_pages` pages are applied together (one transaction with
    the position of the last), as the service's follower does while catching up."""
    first = await client.page(0, limit=1)
    head = first.head
    task = progress.add_task(f"{name}", total=head or None)
    position = 0  # read so far
    applied_to = 0  # applied (with its position) so far
    applied = 0
    batch: list = []
    while True:
        page = await client.page(position)
        if page.next_after > position:
            batch.extend(page.events)
            position = page.next_after
        head = max(head, page.head)
        done = not page.events or position >= head
        if position > applied_to and (done or len(batch) >= batch_pages * client.page_size):
            await sink.apply(batch, position)
            applied += len(batch)
            applied_to, batch = position, []
        progress.update(task, completed=applied_to, total=max(head, applied_to) or None)
        if done:
            break
    return applied


async def _replay_feeds(engine, settings: ReportingSettings, skip_subsidy: bool) -> dict[str, int]:
    key = settings.effective_feed_key
    counts: dict[str, int] = {}
    feeds = [("registry", settings.registry_url, registry_sink(engine))]
    if not skip_subsidy:
        feeds.append(("subsidy", settings.subsidy_url, subsidy_sink(engine)))
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        for name, url, sink in feeds:
            client = FeedClient(url, key)
            try:
                counts[name] = await _replay(name, client, sink, progress, settings.reporting_batch_pages)
            except (FeedUnavailable, httpx.HTTPStatusError) as exc:
                if name == "registry":
                    raise
                console.print(
                    f"[yellow]{name} feed unavailable ({exc}); the service will catch up from 0 when it starts[/yellow]"
                )
                counts[name] = 0
            finally:
                await client.aclose()
    return counts


async def _rebuild(settings: ReportingSettings, skip_subsidy: bool) -> dict[str, int]:
    await asyncio.to_thread(upgrade, settings.database)
    engine = settings.database.async_engine()
    try:
        # the lease first: a running service applying its feeds under our reset would corrupt the figures
        async with ProjectionLease(settings.database).hold():
            await reset(engine)
            counts = await _replay_feeds(engine, settings, skip_subsidy)
            positions = await FigureStore(engine).positions()
    finally:
        await engine.dispose()
    console.print(f"[green]rebuilt[/green]: events applied {counts}, positions {positions}")
    return counts


@app.command()
def rebuild(
    database_url: str | None = typer.Option(None, envvar="TCR_REPORTING_DATABASE_URL"),
    registry_url: str | None = typer.Option(None, envvar="TCR_REGISTRY_URL"),
    subsidy_url: str | None = typer.Option(None, envvar="TCR_SUBSIDY_URL"),
    feed_key: str | None = typer.Option(None, envvar="TCR_FEED_KEY", help="defaults to TCR_ADMIN_KEY"),
    skip_subsidy: bool = typer.Option(False, help="Do not replay the subsidy feed"),
) -> None:
    """Forget every figure and rebuild them from position 0 of both feeds (stop the service first)."""
    settings = _settings(database_url, registry_url, subsidy_url, feed_key)
    try:
        asyncio.run(_rebuild(settings, skip_subsidy))
    except ProjectionBusy as exc:
        console.print(f"[red]refused: {exc}[/red]")
        raise typer.Exit(3) from exc
    except FeedUnavailable as exc:
        console.print(f"[red]the registry feed cannot be read: {exc}[/red]")
        raise typer.Exit(2) from exc
    except httpx.HTTPStatusError as exc:
        console.print(
            f"[red]the feed refused the request: HTTP {exc.response.status_code} "
            f"({exc.request.url}); check TCR_FEED_KEY / TCR_ADMIN_KEY[/red]"
        )
        raise typer.Exit(2) from exc


@app.command()
def status(database_url: str | None = typer.Option(None, envvar="TCR_REPORTING_DATABASE_URL")) -> None:
    """Positions stored per followed feed, and whether a process holds the projection."""
    settings = _settings(database_url, None, None, None)

    async def read() -> tuple[dict[str, int], bool]:
        engine = settings.database.async_engine()
        try:
            positions = await FigureStore(engine).positions()
        finally:
            await engine.dispose()
        try:
            async with ProjectionLease(settings.database).hold():
                return positions, False
        except ProjectionBusy:
            return positions, True

    positions, held = asyncio.run(read())
    for feed, position in sorted(positions.items()):
        console.print(f"{feed}: {position}")
    console.print(
        "projection lease: held (a reporting service or a rebuild is writing the figures)"
        if held
        else "projection lease: free (nothing is applying the feeds)"
    )


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", envvar="TCR_HOST", help="Address to listen on (0.0.0.0 in a container)"),
    port: int = typer.Option(8003, envvar="TCR_REPORTING_PORT", help="Port to listen on"),
) -> None:
    """Run the reporting service over HTTP (settings from the environment, TCR_*) until SIGTERM or Ctrl-C."""
    from tcr_shared.platform.serving import serve as serve_http

    serve_http("tcr_reporting.bootstrap:create_app", host, port)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
