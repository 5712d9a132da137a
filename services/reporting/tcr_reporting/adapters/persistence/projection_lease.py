"""Who may write the reporting projection: the replica that holds the projection lease, or `tcr-reporting
rebuild`, never both at once.

The service applies its feeds only while it holds the lease (`run_while_leader`; a standby serves reads and keeps
its followers' positions current); a rebuild takes the same lease without waiting (`hold`) and refuses to start
when it is taken. Two writers of one projection would race: a rebuild's reset under a live follower leaves
figures that count some events twice and others never.

- PostgreSQL: the shared leader lease (`tcr_shared.platform.lease.Lease`, a session advisory lock on a connection
  of its own); `hold` tries the same lock once (`pg_try_advisory_lock` on the same key). A process that dies loses
  its connection, so PostgreSQL frees the lock at once.
- SQLite: the shared lease is "always held" there (one process by design), which cannot keep a rebuild out; so an
  exclusive `flock` on a file beside the database (`<db>.projection-lock`), freed by the kernel when the holder
  dies, even under kill -9.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Literal

from tcr_shared.platform.database import Database
from tcr_shared.platform.lease import Lease, lock_key, stop_task

log = logging.getLogger("tcr.reporting.lease")

PROJECTION_LEASE = "reporting-projection"
CHECK_EVERY_SECONDS = 1.0
Role = Literal["leader", "standby"]


class ProjectionBusy(RuntimeError):
    """Another process (the running service, or another rebuild) holds the projection."""


class _FileLock:
    """SQLite: an exclusive flock on `<db>.projection-lock` (released by the kernel when the holder dies)."""

    def __init__(self, path: str) -> None:
        self.path = f"{path}.projection-lock"
        self._fd: int | None = None

    async def try_acquire(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    async def check(self) -> None:
        """A held flock cannot be lost."""

    async def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None


class _AdvisoryLock:
    """PostgreSQL: a session advisory lock on a dedicated connection (freed when the connection ends)."""

    def __init__(self, database: Database, name: str, timeout: float) -> None:
        from sqlalchemy.engine import make_url

        self.key = lock_key(name)
        self._dsn = make_url(database.url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._timeout = timeout
        self._conn = None

    async def try_acquire(self) -> bool:
        import psycopg

        conn = await psycopg.AsyncConnection.connect(
            self._dsn, autocommit=True, connect_timeout=max(1, round(self._timeout))
        )
        try:
            async with asyncio.timeout(self._timeout):
                row = await (await conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,))).fetchone()
        except BaseException:
            await conn.close()
            raise
        if not (row and row[0]):
            await conn.close()
            return False
        self._conn = conn
        return True

    async def check(self) -> None:
        """Raises when the lock's connection is gone (the lock with it)."""
        async with asyncio.timeout(self._timeout):
            await self._conn.execute("SELECT 1")

    async def release(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()  # ending the session frees its advisory locks
            self._conn = None


class ProjectionLease:
    def __init__(
        self, database: Database, name: str = PROJECTION_LEASE, *, check_every: float = CHECK_EVERY_SECONDS
    ) -> None:
        self.name = name
        self.check_every = check_every
        self._database = database
        # PostgreSQL: the shared lease; SQLite: the file lock below (the shared lease is always held there)
        self._shared = Lease(database.url, name, check_every=check_every) if database.is_postgres else None
        self._leader = False
        self._since: float | None = None

    def _lock(self) -> _FileLock | _AdvisoryLock:
        if self._database.is_postgres:
            return _AdvisoryLock(self._database, self.name, max(1.0, self.check_every * 3))
        return _FileLock(self._database.sqlite_path)

    @property
    def role(self) -> Role:
        if self._shared is not None:
            return self._shared.role
        return "leader" if self._leader else "standby"

    def as_dict(self) -> dict:
        """For /v1/status: {"lease": name, "role": ..., "leader_since": epoch seconds or None}."""
        if self._shared is not None:
            return self._shared.as_dict()
        return {"lease": self.name, "role": self.role, "leader_since": self._since}

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        """Hold the projection for the block, or raise `ProjectionBusy` at once when someone else holds it."""
        lock = self._lock()
        if not await lock.try_acquire():
            raise ProjectionBusy(
                f"the reporting projection is held by another process (lease {self.name!r}): a running reporting "
                "service or another rebuild. Stop every reporting replica on this database, then run the rebuild."
            )
        try:
            yield
        finally:
            await lock.release()

    async def run_while_leader(
        self, work: Callable[[], Awaitable[None]], standby: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        """Run `work()` whenever this process holds the lease, until cancelled; `standby()` (if given) while it
        does not. The work is cancelled when the lease is lost, the standby when the lease is taken."""
        if self._shared is not None:
            await self._shared.run_while_leader(work, standby)
            return
        while True:
            lock = self._lock()
            waiting = asyncio.create_task(standby(), name=f"lease-{self.name}-standby") if standby else None
            try:
                while not await lock.try_acquire():
                    await asyncio.sleep(self.check_every)
                await stop_task(waiting)
                await self._lead(lock, work)
            finally:
                await stop_task(waiting)
                self._step_down()
                await lock.release()
            await asyncio.sleep(self.check_every)

    async def _lead(self, lock: _FileLock | _AdvisoryLock, work: Callable[[], Awaitable[None]]) -> None:
        self._leader, self._since = True, time.time()
        log.info("lease %s: leader", self.name)
        task = asyncio.create_task(work(), name=f"lease-{self.name}")
        try:
            while not task.done():
                await asyncio.wait({task}, timeout=self.check_every)
                if not task.done():
                    await lock.check()
        finally:
            await stop_task(task)

    def _step_down(self) -> None:
        if self._leader:
            log.warning("lease %s: no longer leader", self.name)
        self._leader, self._since = False, None
