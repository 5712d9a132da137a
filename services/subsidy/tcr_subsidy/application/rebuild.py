"""Rebuilding the projection from zero, and checking that a rebuild equals the live state."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine

from tcr_shared.feeds.client import FeedClient
from tcr_subsidy.adapters.persistence import tables as t
from tcr_subsidy.application.projection import REGISTRY_FEED, AwardProjection, NotifyingSink

Progress = Callable[[int, int], None]  # (position reached, registry head)


async def wipe(db: AsyncEngine) -> None:
    """Delete every derived row (the service must be stopped): the next follow starts from position 0."""
    async with db.begin() as conn:
        for table in (t.award_events, t.awards, t.caps, t.contracts, t.skipped_events):
            await conn.execute(delete(table))
        await conn.execute(delete(t.feed_tracking).where(t.feed_tracking.c.feed == REGISTRY_FEED))


async def replay(
    db: AsyncEngine,
    projection: AwardProjection,
    feed: FeedClient,
    *,
    up_to: int | None = None,
    page_size: int = 1000,
    progress: Progress | None = None,
) -> int:
    """Apply the registry feed from the recorded position up to `up_to` (default: the head when a page comes
    back empty), page by page, each page in one transaction with its position. Returns the position reached."""
    sink = NotifyingSink(db, projection, lambda: None)
    position = await sink.position()
    while up_to is None or position < up_to:
        page = await feed.page(position, limit=page_size)
        events = [e for e in page.events if up_to is None or e.position <= up_to]
        target = page.next_after if up_to is None else min(page.next_after, up_to)
        if len(events) < len(page.events) or (not page.events and up_to is not None and page.head >= up_to):
            target = up_to
        if target <= position:
            if progress:
                progress(position, page.head)
            break
        await sink.apply(events, target)
        position = target
        if progress:
            progress(position, max(page.head, position))
    return position
