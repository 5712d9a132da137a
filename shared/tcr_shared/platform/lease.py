"""A leader lease among the replicas of a service: work that must run once per database (applying a followed feed,
delivering webhooks) runs only in the replica that holds a PostgreSQL advisory lock; the others serve reads and
take over within a few seconds when the leader dies.

    lease = Lease(settings.database_url, "subsidy-follower")
    task = asyncio.create_task(lease.run_while_leader(follower.run))
    ... /v1/status shows lease.role ("leader" or "standby")

The lock is a session lock (`pg_try_advisory_lock`) held on a connection of its own, which the leader checks every
`check_every` seconds. A leader whose process dies loses its connection, so PostgreSQL frees the lock at once and a
standby takes it at its next try. A leader that loses its connection (PostgreSQL restarted, network) stops its
work and becomes a standby. Between a leader losing its lock and noticing (at most `check_every` plus the check's
timeout) two replicas may both run: the work must stay correct when that happens (the feed position's
compare-and-set refuses the loser's page; webhook deliveries are at-least-once), the lease only avoids doing it
N times over. On SQLite (one process by design) the lease is always held.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Literal

from sqlalchemy.engine import make_url

log = logging.getLogger("tcr.lease")

Role = Literal["leader", "standby"]
CHECK_EVERY_SECONDS = 1.0


def lock_key(name: str) -> int:
    """The advisory lock's bigint key for a lease name (stable across processes and versions)."""
    return int.from_bytes(hashlib.sha256(f"tcr-lease:{name}".encode()).digest()[:8], "big", signed=True)


class Lease:
    def __init__(self, database_url: str, name: str, *, check_every: float = CHECK_EVERY_SECONDS) -> None:
        url = make_url(database_url)
        self.name = name
        self.key = lock_key(name)
        self.check_every = check_every
        self._postgres = url.get_backend_name() == "postgresql"
        self._dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._leader = not self._postgres
        self._since = time.time() if self._leader else None

    @property
    def role(self) -> Role:
        return "leader" if self._leader else "standby"

    def as_dict(self) -> dict:
        """For /v1/status: {"lease": name, "role": ..., "leader_since": epoch seconds or None}."""
        return {"lease": self.name, "role": self.role, "leader_since": self._since}

    async def run_while_leader(
        self, work: Callable[[], Awaitable[None]], standby: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        """Run `work()` whenever this replica holds the lease, until cancelled. `work` is cancelled when the lease
        is lost; if it ends (returns or raises) the lease is given up, to be taken again at the next try.
        `standby()`, if given, runs while this replica is not the leader (e.g. `Follower.watch`, which keeps a
        standby's position current for read-your-writes) and is cancelled when it becomes the leader."""
        try:
            if not self._postgres:
                self._leader, self._since = True, self._since or time.time()
                await work()
                return
            while True:
                waiting = asyncio.create_task(standby(), name=f"lease-{self.name}-standby") if standby else None
                try:
                    await self._lead_once(work, waiting)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # PostgreSQL unreachable or the lock connection lost: try again
                    log.warning("lease %s: %r; standing by", self.name, exc)
                finally:
                    await stop_task(waiting)
                self._step_down()
                await asyncio.sleep(self.check_every)
        finally:  # cancelled (the service stops) or the work ended: this replica no longer does the work
            self._step_down()

    async def _lead_once(self, work: Callable[[], Awaitable[None]], waiting: asyncio.Task | None) -> None:
        import psycopg

        timeout = max(1, round(self.check_every * 3))
        async with await psycopg.AsyncConnection.connect(self._dsn, autocommit=True, connect_timeout=timeout) as conn:
            while not await self._try_lock(conn, timeout):
                await asyncio.sleep(self.check_every)
            await stop_task(waiting)
            self._leader, self._since = True, time.time()
            log.info("lease %s: leader", self.name)
            task = asyncio.create_task(work(), name=f"lease-{self.name}")
            try:
                await self._hold(conn, task, timeout)
            finally:
                await stop_task(task)
            if not task.cancelled() and task.exception() is not None:
                log.error("lease %s: the leader's work failed", self.name, exc_info=task.exception())
            with contextlib.suppress(Exception):
                await conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,))

    async def _try_lock(self, conn, timeout: float) -> bool:
        async with asyncio.timeout(timeout):
            row = await (await conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,))).fetchone()
        return bool(row and row[0])

    async def _hold(self, conn, task: asyncio.Task, timeout: float) -> None:
        """Until the work ends, check every `check_every` that the lock's connection is alive (a failure raises)."""
        while not task.done():
            await asyncio.wait({task}, timeout=self.check_every)
            if task.done():
                return
            async with asyncio.timeout(timeout):
                await conn.execute("SELECT 1")

    def _step_down(self) -> None:
        if self._leader:
            log.warning("lease %s: no longer leader", self.name)
        self._leader, self._since = False, None


async def stop_task(task: asyncio.Task | None) -> None:
    """Cancel `task` and wait until it has ended, cancelling again while it runs on: on Python 3.11 a
    cancellation that arrives just as an `asyncio.wait_for` inside the task completes is swallowed, and a task
    that lost its cancellation would hold the service's shutdown (and a test) forever."""
    if task is None:
        return
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=1.0)
    with contextlib.suppress(asyncio.CancelledError, Exception):
        task.result()  # retrieved, so asyncio does not log "exception was never retrieved"
