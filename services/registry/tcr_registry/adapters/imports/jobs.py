"""The ImportJobs port over the import_jobs and import_errors tables."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from tcr_registry.adapters.persistence.models import import_errors, import_jobs
from tcr_registry.application.imports import RUNNING, ImportJob, RowError

_COUNTS = ("status", "rows", "processed", "registered", "certified", "already_registered", "rejected", "message")


class SqlImportJobs:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._next_seq: dict[str, int] = defaultdict(int)  # one process runs a job: it numbers the job's errors

    async def create(self, job: ImportJob) -> None:
        job.created_at = job.created_at or datetime.now(UTC)
        async with self._engine.begin() as conn:
            await conn.execute(insert(import_jobs).values(**_row(job)))

    async def update(self, job: ImportJob, errors: list[RowError]) -> None:
        async with self._engine.begin() as conn:
            if errors:
                first = self._next_seq[job.id]
                self._next_seq[job.id] += len(errors)
                await conn.execute(
                    insert(import_errors),
                    [
                        {
                            "job_id": job.id,
                            "seq": first + n,
                            "row": e.row,
                            "field": e.field,
                            "message": e.message[:2000],
                        }
                        for n, e in enumerate(errors)
                    ],
                )
            values = {name: getattr(job, name) for name in _COUNTS} | {"finished_at": job.finished_at}
            await conn.execute(update(import_jobs).where(import_jobs.c.id == job.id).values(**values))
        if job.status != RUNNING:
            self._next_seq.pop(job.id, None)

    async def get(self, job_id: str) -> ImportJob | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(import_jobs).where(import_jobs.c.id == job_id))).mappings().first()
        if row is None:
            return None
        job = ImportJob(**dict(row))
        job.created_at, job.finished_at = _aware(job.created_at), _aware(job.finished_at)
        return job

    async def errors(self, job_id: str) -> AsyncIterator[RowError]:
        query = (
            select(import_errors.c.row, import_errors.c.field, import_errors.c.message)
            .where(import_errors.c.job_id == job_id)
            .order_by(import_errors.c.row, import_errors.c.seq)
        )
        async with self._engine.connect() as conn:
            for row in await conn.execute(query):
                yield RowError(row.row, row.field, row.message)


def _aware(moment: datetime | None) -> datetime | None:
    """SQLite gives back times without their offset; they were stored in UTC."""
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def _row(job: ImportJob) -> dict:
    return {
        "id": job.id,
        "point_id": job.point_id,
        "filename": job.filename[:300],
        "created_at": job.created_at,
        "finished_at": job.finished_at,
        **{name: getattr(job, name) for name in _COUNTS},
    }
