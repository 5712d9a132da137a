"""Group commit of the subscriptions' cursors and delivery rows.

Every accepted delivery moves its subscription's cursor and logs the attempt before the next event of that
subscription is sent (a restart never sends an acknowledged event again). Written one transaction per delivery,
the commits were the limit: on SQLite every subscription queued on the one write lock and its fsync (about 100
deliveries/s in all, whatever the number of subscriptions; docs/performance.md). Here each subscription's task
still waits for its own write to be committed, but the writes that are waiting at the same moment (other
subscriptions') share one transaction. Each write keeps its compare-and-set on the generation: one superseded
subscription (a replay or an edit in between) loses its own write only, not the batch's.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from tcr_shared.partners.webhooks.tables import WebhookTables

PRUNE_EVERY = 100  # logged attempts of one subscription between two prunings of its older rows


@dataclass
class _Write:
    subscription_id: str
    generation: int
    values: dict[str, Any]
    attempt: dict[str, Any] | None
    done: asyncio.Future = field(repr=False)


class GroupWriter:
    """`await write(...)` returns True once committed, False when the subscription was superseded (its
    generation or status changed): nothing of that write was stored."""

    def __init__(self, engine: AsyncEngine, tables: WebhookTables, deliveries_kept: int, max_batch: int = 256) -> None:
        self.engine = engine
        self.t = tables
        self.deliveries_kept = deliveries_kept
        self.max_batch = max_batch
        self._pending: list[_Write] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._logged: Counter[str] = Counter()  # attempts logged per subscription since its last pruning
        self._statements: dict[tuple[str, ...], Any] = {}
        self._last_stamp: datetime | None = None
        self.commits = 0  # transactions committed (the tests read it to see that writes were grouped)

    async def write(
        self, subscription_id: str, generation: int, values: dict[str, Any], attempt: dict[str, Any] | None
    ) -> bool:
        done = asyncio.get_running_loop().create_future()
        self._pending.append(_Write(subscription_id, generation, values, attempt, done))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="webhook-writes")
        self._wake.set()
        return await done

    async def close(self) -> None:
        """Stop the writer task; writes still waiting fail with CancelledError (their delivery is sent again)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for write in self._pending:
            write.done.cancel()
        self._pending.clear()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch = [w for w in self._pending[: self.max_batch] if not w.done.done()]  # a cancelled caller's
                del self._pending[: self.max_batch]  # write is dropped: it resends its event from the stored cursor
                if not batch:
                    continue
                try:
                    results = await self._commit(batch)
                except asyncio.CancelledError:
                    for write in batch:
                        write.done.cancel()
                    raise
                except Exception as exc:  # the database failed: every caller of the batch learns it and retries
                    for write in batch:
                        if not write.done.done():
                            write.done.set_exception(exc)
                    continue
                for write, stored in zip(batch, results, strict=True):
                    if not write.done.done():
                        write.done.set_result(stored)

    async def _commit(self, batch: list[_Write]) -> list[bool]:
        """One transaction for the batch: the updates (one statement per set of columns, executemany), then which
        of them took (a compare-and-set that failed changed nothing), then the delivery rows of those that took."""
        s, d = self.t.subscriptions, self.t.deliveries
        stamp = self._stamp()
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for write in batch:
            values = {**write.values, "updated_at": stamp}
            params = {f"new_{k}": v for k, v in values.items()}
            groups.setdefault(tuple(sorted(values)), []).append(
                {"sub_id": write.subscription_id, "sub_generation": write.generation, **params}
            )
        ids = [w.subscription_id for w in batch]
        async with self.engine.begin() as conn:
            changed = 0
            for columns, params in groups.items():
                changed += (await conn.execute(self._update_statement(columns), params)).rowcount
            if changed == len(batch) and conn.dialect.supports_sane_multi_rowcount:
                # Each update matches one row at most (by id), so as many rows changed as writes: every one took.
                results = [True] * len(batch)
            else:
                # Ours are the rows now carrying this batch's stamp at the generation the write was made for: a
                # superseded subscription had its generation bumped, and generations only grow.
                rows = await conn.execute(
                    select(s.c.id, s.c.generation).where(s.c.id.in_(ids), s.c.updated_at == stamp)
                )
                took = {(row.id, row.generation) for row in rows}
                results = [(w.subscription_id, w.generation) in took for w in batch]
            logged = [
                {"subscription_id": w.subscription_id, **w.attempt}
                for w, ok in zip(batch, results, strict=True)
                if ok and w.attempt is not None
            ]
            if logged:
                await conn.execute(d.insert(), logged)
            for row in logged:
                await self._prune(conn, row["subscription_id"])
        self.commits += 1
        return results

    def _stamp(self) -> datetime:
        """`updated_at` of a batch: now, and never equal to the previous batch's (it tells which rows took)."""
        now = datetime.now(UTC)
        if self._last_stamp is not None and now <= self._last_stamp:
            now = self._last_stamp + timedelta(microseconds=1)
        self._last_stamp = now
        return now

    def _update_statement(self, columns: tuple[str, ...]):
        statement = self._statements.get(columns)
        if statement is None:
            s = self.t.subscriptions
            statement = self._statements[columns] = (
                update(s)
                .where(
                    s.c.id == bindparam("sub_id"),
                    s.c.generation == bindparam("sub_generation"),
                    s.c.status == "active",
                )
                .values({c: bindparam(f"new_{c}") for c in columns})
            )
        return statement

    async def _prune(self, conn, sub_id: str) -> None:
        """Now and then keep only the newest `deliveries_kept` attempts of a subscription."""
        self._logged[sub_id] += 1
        if self._logged[sub_id] < PRUNE_EVERY:
            return
        self._logged[sub_id] = 0
        d = self.t.deliveries
        cutoff = await conn.scalar(
            select(d.c.id)
            .where(d.c.subscription_id == sub_id)
            .order_by(d.c.id.desc())
            .offset(self.deliveries_kept)
            .limit(1)
        )
        if cutoff is not None:
            await conn.execute(delete(d).where(d.c.subscription_id == sub_id, d.c.id <= cutoff))
