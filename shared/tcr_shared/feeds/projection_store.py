"""A SQLAlchemy sink for `Follower`: the projection's writes and the position reached share one transaction."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from sqlalchemy import BigInteger, Column, DateTime, MetaData, String, Table, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tcr_shared.language.events.envelope import FeedEvent

ApplyPage = Callable[[AsyncSession, Sequence[FeedEvent]], Awaitable[None]]


def tracking_table(metadata: MetaData) -> Table:
    """The position each followed feed has reached; add it to a service's own metadata and migrations."""
    return Table(
        "feed_tracking",
        metadata,
        Column("feed", String(100), primary_key=True),
        Column("position", BigInteger, nullable=False),
        Column("updated_at", DateTime(timezone=True), server_default=func.now(), onupdate=func.now()),
    )


class FeedTracking:
    """The position a projection has reached in one feed, and the transactions that move it: what a sink that
    prepares its writes itself (subsidy's pipelined sink) needs; `SqlProjectionSink` adds the plain page apply."""

    def __init__(self, engine: AsyncEngine, tracking: Table, feed: str) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._tracking = tracking
        self._feed = feed

    async def position(self) -> int:
        async with self._sessions() as session:
            value = await session.scalar(select(self._tracking.c.position).where(self._tracking.c.feed == self._feed))
            return int(value or 0)

    @contextlib.asynccontextmanager
    async def advancing(self, position: int) -> AsyncIterator[AsyncSession]:
        """One transaction whose writes take effect together with the feed reaching `position` (for a sink that
        prepares its writes elsewhere, e.g. while the previous transaction commits)."""
        async with self._sessions() as session, session.begin():
            yield session
            await self._advance(session, position)

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        """A session of its own for reads outside the applying transaction (it sees committed rows only)."""
        async with self._sessions() as session:
            yield session

    async def _advance(self, session: AsyncSession, position: int) -> None:
        table = self._tracking
        # Compare-and-set: a second follower process on the same feed cannot apply a page twice.
        updated = await session.execute(
            table.update().where(table.c.feed == self._feed, table.c.position < position).values(position=position)
        )
        if updated.rowcount == 1:
            return
        existing = await session.scalar(select(table.c.position).where(table.c.feed == self._feed))
        if existing is None:
            await session.execute(table.insert().values(feed=self._feed, position=position))
        else:
            raise RuntimeError(f"feed {self._feed} is already at {existing}; refusing to apply up to {position} twice")


class SqlProjectionSink(FeedTracking):
    """A `Follower`'s sink: each page applied by `apply_page` in the transaction that records its position."""

    def __init__(self, engine: AsyncEngine, tracking: Table, feed: str, apply_page: ApplyPage) -> None:
        super().__init__(engine, tracking, feed)
        self._apply_page = apply_page

    async def apply(self, events: Sequence[FeedEvent], position: int) -> None:
        async with self.advancing(position) as session:
            await self._apply_page(session, events)
