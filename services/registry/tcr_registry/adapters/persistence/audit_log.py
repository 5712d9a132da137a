"""The audit trail: an append-only table (the migration's triggers refuse UPDATE, DELETE and TRUNCATE) of every
write and administrative act: who (key id, role, point), what (action, target), when, from which address, and
the outcome (the HTTP status answered).

Entries are written before the answer leaves (no acknowledged write without its entry), and written together:
requests that finish at the same moment share one transaction (group commit), so the trail costs the writes
one short wait, not one fsync each.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tcr_registry.adapters.persistence.models import audit_log

log = logging.getLogger("tcr.registry.audit")


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    key_id: str | None
    role: str | None
    point_id: str | None
    action: str
    target: str | None
    method: str
    path: str
    address: str | None
    outcome: int


@dataclass(frozen=True)
class AuditQuery:
    since: datetime | None = None
    until: datetime | None = None
    key_id: str | None = None
    action: str | None = None


class AuditLog:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._pending: list[tuple[AuditEntry, asyncio.Future]] = []
        self._flusher: asyncio.Task | None = None

    async def record(self, entry: AuditEntry) -> None:
        """Returns once the entry is committed (with whatever else was waiting)."""
        done = asyncio.get_running_loop().create_future()
        self._pending.append((entry, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="audit-flush")
        await done

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                async with self._engine.begin() as conn:
                    await conn.execute(insert(audit_log), [asdict(entry) for entry, _ in batch])
            except Exception as exc:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
            else:
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)

    async def page(self, query: AuditQuery, after: int | None, limit: int) -> list[dict]:
        t = audit_log
        statement = select(t).order_by(t.c.id).limit(limit)
        if after is not None:
            statement = statement.where(t.c.id > after)
        if query.since is not None:
            statement = statement.where(t.c.at >= query.since)
        if query.until is not None:
            statement = statement.where(t.c.at < query.until)
        if query.key_id is not None:
            statement = statement.where(t.c.key_id == query.key_id)
        if query.action is not None:
            statement = statement.where(t.c.action == query.action)
        async with self._engine.connect() as conn:
            return [dict(row) for row in (await conn.execute(statement)).mappings().all()]
