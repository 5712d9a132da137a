"""Who writes the award projection: the running service (its follower) or `tcr-subsidy rebuild`, never both.

A rebuild deletes every decision and replays the registry feed; a follower writing at the same time would
interleave its pages with the replay. So the follower writes only while it holds the projection, and a rebuild
takes it first or refuses with a clear message:

- PostgreSQL: the session advisory lock of the follower's lease (`tcr_shared.platform.lease`, name
  `subsidy-follower`), held by the replica that applies the feed; the rebuild takes the same lock on a connection
  of its own for as long as it runs, so a service started meanwhile stands by until the rebuild is done.
- SQLite: an exclusive `flock` on a file beside the database (`<database>.projection.lock`), held by the service
  while it follows, and by the rebuild; the kernel frees it when its process dies, so a crash leaves no stale lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from tcr_shared.platform.database import Database
from tcr_shared.platform.lease import lock_key

FOLLOWER_LEASE = "subsidy-follower"
RETRY_SECONDS = 1.0


class ProjectionBusy(RuntimeError):
    """Another process holds the projection (the running service, or another rebuild)."""


def lock_file(database: Database) -> Path | None:
    """The SQLite lock file, or None for a database without a file (in memory)."""
    path = database.sqlite_path
    if not path or path == ":memory:":
        return None
    return Path(path).with_name(Path(path).name + ".projection.lock")


def _try_flock(path: Path) -> int | None:
    """An open descriptor holding the exclusive lock, or None when another process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _release(fd: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


@contextlib.contextmanager
def held_for_rebuild(database: Database) -> Iterator[None]:
    """Hold the projection for a rebuild, or raise ProjectionBusy at once."""
    busy = ProjectionBusy(
        "the subsidy projection is held by a running subsidy service (or another rebuild): stop the service "
        "(every replica) first; it resumes from the rebuilt position when started again"
    )
    if database.is_postgres:
        import psycopg

        dsn = database.sync_url.replace("postgresql+psycopg", "postgresql", 1)
        with psycopg.connect(dsn, autocommit=True) as conn:
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (lock_key(FOLLOWER_LEASE),)).fetchone()
            if not (row and row[0]):
                raise busy
            try:
                yield
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (lock_key(FOLLOWER_LEASE),))
        return
    path = lock_file(database)
    fd = _try_flock(path) if path is not None else None
    if path is not None and fd is None:
        raise busy
    try:
        yield
    finally:
        if fd is not None:
            _release(fd)


@contextlib.asynccontextmanager
async def held_while_following(database: Database) -> AsyncIterator[None]:
    """The service's side on SQLite: wait (retrying every second) until no rebuild holds the projection, then
    hold it until the follower stops. On PostgreSQL the follower's lease is the lock, so this holds nothing."""
    path = None if database.is_postgres else lock_file(database)
    if path is None:
        yield
        return
    while (fd := _try_flock(path)) is None:
        await asyncio.sleep(RETRY_SECONDS)
    try:
        yield
    finally:
        _release(fd)
