"""`tcr-registry import`'s view of an import: a progress bar with rows/s and an ETA, then the outcome."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from tcr_registry.adapters.imports.files import errors_csv
from tcr_registry.adapters.imports.jobs import SqlImportJobs
from tcr_registry.adapters.imports.service import UnknownPoint, import_file
from tcr_registry.application.imports import ImportFileError, ImportJob
from tcr_registry.settings import RegistrySettings


class RowsPerSecond(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:,.0f} rows/s" if task.speed else "- rows/s", style="cyan")


async def run_with_progress(
    settings: RegistrySettings, path: Path, point_id: str, errors_path: Path | None, console: Console
) -> ImportJob | None:
    progress = Progress(
        TextColumn("[bold]importing[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
        RowsPerSecond(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
    )
    task = None

    def started(job: ImportJob) -> None:
        nonlocal task
        task = progress.add_task("import", total=job.rows)

    def advanced(job: ImportJob) -> None:
        progress.update(task, completed=job.processed)

    try:
        with progress:
            job = await import_file(
                settings.database,
                path,
                point_id,
                started,
                advanced,
                writer_batch=settings.writer_batch,
                writer_cache=settings.writer_cache,
            )
    except UnknownPoint as exc:
        console.print(f"[red]{exc}[/red]")
        return None
    except ImportFileError as exc:
        console.print(f"[red]{exc}[/red]")
        for field, message in exc.errors:
            console.print(f"  {field}: {message}")
        return None
    await _report(settings, job, errors_path or path.with_name(path.name + ".rejected.csv"), console)
    return job


async def _report(settings: RegistrySettings, job: ImportJob, errors_path: Path, console: Console) -> None:
    colour = "green" if job.status == "done" else "red"
    console.print(
        f"[{colour}]import {job.status}[/{colour}] (job {job.id}): {job.rows} rows, {job.registered} registered "
        f"({job.certified} certified), {job.already_registered} already registered, {job.rejected} rejected"
    )
    if job.message:
        console.print(f"[red]{job.message}[/red]")
    if not job.rejected:
        return
    engine = settings.database.async_engine()
    try:
        rows = [error async for error in SqlImportJobs(engine).errors(job.id)]
    finally:
        await engine.dispose()
    errors_path.write_bytes(b"".join(errors_csv(rows)))
    console.print(f"rejected rows (row, field, message): {errors_path}")
