"""The registry feed into the projection: events applied in transactions that each record the position reached."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncEngine

from tcr_shared.feeds.projection_store import FeedTracking
from tcr_shared.language.events.envelope import FeedEvent
from tcr_shared.platform.collector import collector_paused
from tcr_subsidy.adapters.persistence import tables as t
from tcr_subsidy.adapters.persistence.store import PageRows, SqlAwardStore, page_rows, write_rows
from tcr_subsidy.application.page import PageLedger
from tcr_subsidy.application.projection import REGISTRY_FEED, AwardProjection, DecidedPage

CHUNK_EVENTS = 1000  # events per transaction: a feed page's worth


class NotifyingSink:
    """Applies a batch of registry events in transactions of up to `chunk` events, each recording the position of
    its last event (the last one the batch's position), and rings `after_commit` after each commit (wakes the award
    feed's long polls and SSE).

    On PostgreSQL the chunks are pipelined: chunk N+1 is loaded and decided (our process's core) while chunk N is
    written and committed (PostgreSQL's). Chunk N+1's decisions depend on chunk N's, which are not committed yet:
    whatever chunk N's ledger holds (its contracts with their awards, its caps) is carried in memory into chunk
    N+1's ledger, and only the rest is read from the database, where chunk N changes nothing. Chunk N's rows are
    taken (`page_rows`) before chunk N+1 is decided, so chunk N commits exactly its own events' effects with its
    position. Chunk N+1 is written only after chunk N has committed; if chunk N fails, chunk N+1 is dropped with
    it and the failure propagates (the follower resumes from the position last committed). Nothing is kept from
    one `apply` to the next: a failed commit or a lost lease leaves no state behind.
    """

    def __init__(
        self,
        db: AsyncEngine,
        projection: AwardProjection,
        after_commit: Callable[[], None],
        feed: str = REGISTRY_FEED,
        *,
        chunk: int = CHUNK_EVENTS,
        overlap: bool | None = None,
    ) -> None:
        self._inner = FeedTracking(db, t.feed_tracking, feed)
        self._projection = projection
        self._after_commit = after_commit
        self._chunk = max(1, chunk)
        # SQLite has one writer and no use for a second core: its chunks run one after the other.
        self._overlap = db.dialect.name == "postgresql" if overlap is None else overlap

    async def position(self) -> int:
        return await self._inner.position()

    async def apply(self, events: Sequence[FeedEvent], position: int) -> None:
        writing: asyncio.Task | None = None
        carried: PageLedger | None = None
        try:
            with collector_paused():  # a burst of allocation without cycles: see collector_paused
                for chunk, reached in _chunks(events, position, self._chunk):
                    if writing is not None and not self._overlap:
                        await self._committed(writing)
                        writing = None
                    async with self._inner.reading() as session:
                        decided = await self._projection.decide_page(SqlAwardStore(session), chunk, carried)
                    rows = page_rows(decided.page, decided.outputs, decided.skipped)  # before anything decides on
                    if writing is not None:
                        await self._committed(writing)
                        writing = None
                    writing = asyncio.create_task(self._write(rows, reached, decided))
                    carried = decided.page
                if writing is not None:
                    await self._committed(writing)
                    writing = None
        except BaseException as failure:
            if writing is not None and not writing.done():
                # Deciding failed: the page in flight still commits or fails by itself (its rows and position are
                # its own). Cancelled (shutdown, lost lease): it is cancelled too; either way it ends first.
                if isinstance(failure, asyncio.CancelledError):
                    writing.cancel()
                with contextlib.suppress(BaseException):
                    await writing
                if writing.done() and not writing.cancelled() and writing.exception() is None:
                    self._after_commit()  # it did commit: wake the award feed's readers
            raise

    async def _write(self, rows: PageRows, position: int, decided: DecidedPage) -> None:
        async with self._inner.advancing(position) as session:
            await write_rows(session, rows)
        self._projection.written(decided)

    async def _committed(self, writing: asyncio.Task) -> None:
        await writing
        self._after_commit()


def _chunks(events: Sequence[FeedEvent], position: int, size: int):
    """The batch cut into runs of `size` events, each with the position it reaches (its last event's; the last run
    the batch's own position, which may lie beyond its last event)."""
    if len(events) <= size:
        yield events, position
        return
    for start in range(0, len(events), size):
        chunk = events[start : start + size]
        yield chunk, (position if start + size >= len(events) else chunk[-1].position)
