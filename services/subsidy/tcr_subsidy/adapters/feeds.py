"""The registry feed into the projection: each page applied in one transaction with its tracking position."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tcr_shared.feeds.projection_store import SqlProjectionSink
from tcr_shared.language.events.envelope import FeedEvent
from tcr_subsidy.adapters.persistence import tables as t
from tcr_subsidy.adapters.persistence.store import SqlAwardStore
from tcr_subsidy.application.projection import REGISTRY_FEED, AwardProjection


class NotifyingSink:
    """SqlProjectionSink plus a callback after each commit (wakes the award feed's long polls and SSE)."""

    def __init__(
        self, db: AsyncEngine, projection: AwardProjection, after_commit: Callable[[], None], feed: str = REGISTRY_FEED
    ) -> None:
        async def apply_page(session: AsyncSession, events: Sequence[FeedEvent]) -> None:
            await projection.apply_page(SqlAwardStore(session), events)

        self._inner = SqlProjectionSink(db, t.feed_tracking, feed, apply_page)
        self._after_commit = after_commit

    async def position(self) -> int:
        return await self._inner.position()

    async def apply(self, events: Sequence[FeedEvent], position: int) -> None:
        await self._inner.apply(events, position)
        self._after_commit()
