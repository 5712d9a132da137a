"""Running batch-list imports: in the background of the registry service (POST /v1/imports), or in the
`tcr-registry import` command with a writer of its own. Both run the same ImportRun through a writer."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from tcr_registry.adapters.imports.files import BatchList
from tcr_registry.adapters.imports.jobs import SqlImportJobs
from tcr_registry.adapters.imports.planning import row_planners
from tcr_registry.adapters.imports.terms import read_terms
from tcr_registry.adapters.persistence import migrate
from tcr_registry.adapters.persistence.event_store import Registry
from tcr_registry.adapters.persistence.points_and_keys import SqlPointsAndKeys
from tcr_registry.adapters.persistence.writer import Writer
from tcr_registry.application.actor import PointActor
from tcr_registry.application.imports import ImportFileError, ImportJob, ImportRun
from tcr_registry.application.ports import CommandRunner, PointsAndKeys
from tcr_shared.platform.database import Database


def _now() -> datetime:
    return datetime.now(UTC)


async def point_actor(points: PointsAndKeys, point_id: str) -> PointActor | None:
    for point in await points.list_points():
        if point.id == point_id:
            return PointActor(point.id, point.jurisdiction, point.number)
    return None


def new_job(actor: PointActor, filename: str, source: BatchList) -> ImportJob:
    return ImportJob(id=str(uuid.uuid4()), point_id=actor.point_id, filename=filename, rows=source.rows)


class Imports:
    """The service's imports: each runs as a task of its own; the uploaded file is deleted when it ends."""

    def __init__(self, jobs: SqlImportJobs, runner: Callable[[], CommandRunner]) -> None:
        self.jobs = jobs
        self._runner = runner  # the writer exists only once the service has started
        self._tasks: set[asyncio.Task] = set()

    async def start(self, path: Path, filename: str, actor: PointActor) -> ImportJob:
        """The job, once the file's header is read; ImportFileError when the file cannot be imported at all."""
        try:
            source = await asyncio.to_thread(BatchList, path)
        except ImportFileError:
            path.unlink(missing_ok=True)
            raise
        job = new_job(actor, filename, source)
        await self.jobs.create(job)
        task = asyncio.create_task(self._run(job, actor, source, path), name=f"import-{job.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    async def _run(self, job: ImportJob, actor: PointActor, source: BatchList, path: Path) -> None:
        try:
            async with row_planners(source.rows) as planner:
                await ImportRun(job, actor, self._runner(), self.jobs, _now, read_terms, planner=planner).run(source)
        finally:
            path.unlink(missing_ok=True)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def idle(self) -> None:
        """Wait until every running import has ended (tests and orderly shutdowns)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


class UnknownPoint(Exception):
    pass


async def import_file(
    database: Database,
    path: Path,
    point_id: str,
    on_start: Callable[[ImportJob], None] = lambda _job: None,
    on_progress: Callable[[ImportJob], None] = lambda _job: None,
    writer_batch: int = 512,
    writer_cache: int = 20_000,
    planners: int | None = None,
) -> ImportJob:
    """Import a file into the registry's database with a writer of this process (the `tcr-registry import`
    command). The service may run meanwhile: the writers' conflicts are resolved as between two services."""
    await asyncio.to_thread(migrate.upgrade, database)
    registry = await asyncio.to_thread(Registry, database.eventsourcing_env())
    engine = database.async_engine()
    writer = Writer(registry, max_batch=writer_batch, cache_size=writer_cache)
    writer.start()
    try:
        actor = await point_actor(SqlPointsAndKeys(engine), point_id)
        if actor is None:
            raise UnknownPoint(f"there is no registration point {point_id!r}")
        source = await asyncio.to_thread(BatchList, path)
        jobs = SqlImportJobs(engine)
        job = new_job(actor, Path(path).name, source)
        await jobs.create(job)
        on_start(job)
        async with row_planners(source.rows, planners) as planner:
            return await ImportRun(job, actor, writer, jobs, _now, read_terms, on_progress, planner=planner).run(source)
    finally:
        await asyncio.to_thread(writer.stop)
        registry.close()
        await engine.dispose()
