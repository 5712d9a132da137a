"""The contract index's sink when several registry processes share one database.

Each process runs its own index follower over the same log and the same table. With the plain
`SqlProjectionSink`, the slower one re-applied pages the faster one had already applied: the inserts collided,
the transaction rolled back with an ERROR and a traceback in the log, and the follower paused a second before
retrying. Here the followers take turns on the tracking row (SELECT ... FOR UPDATE on PostgreSQL) and each
applies only the events past the position recorded there, so both stay exactly-once and quiet.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tcr_shared.feeds.projection_store import SqlProjectionSink
from tcr_shared.language.events.envelope import FeedEvent


class SharedIndexSink(SqlProjectionSink):
    async def apply(self, events: Sequence[FeedEvent], position: int) -> None:
        async with self._sessions() as session, session.begin():
            current = await self._locked_position(session)
            if current >= position:
                return  # another process applied this page already
            await self._apply_page(session, [e for e in events if e.position > current])
            await self._advance(session, position)

    async def _locked_position(self, session: AsyncSession) -> int:
        table = self._tracking
        query = select(table.c.position).where(table.c.feed == self._feed).with_for_update()
        value = await session.scalar(query)
        if value is None:
            try:
                async with session.begin_nested():
                    await session.execute(table.insert().values(feed=self._feed, position=0))
            except IntegrityError:
                pass  # another process created the row first
            value = await session.scalar(query)
        return int(value or 0)
