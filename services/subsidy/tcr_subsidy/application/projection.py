"""Applying pages of registry events: decisions, cap usage, contract records, the award feed and the tracking
position all change in ONE transaction (SqlProjectionSink), so each registry event takes effect exactly once."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tcr_shared.language.events.envelope import FeedEvent, FeedPage
from tcr_shared.feeds.client import FeedClient
from tcr_shared.feeds.projection_store import SqlProjectionSink
from tcr_subsidy.adapters.persistence import tables as t
from tcr_subsidy.adapters.persistence.store import load_page_state, write_page
from tcr_subsidy.domain.awards import Engine, MalformedEvent, RegistryEvent, UnknownEventType

log = logging.getLogger("tcr.subsidy.projection")
REGISTRY_FEED = "registry"


def registry_event(event: FeedEvent) -> RegistryEvent:
    return RegistryEvent(id=event.id, type=event.type, position=event.position, time=event.time,
                         contract_id=event.subject or str(event.data.get("contract_id", "")), data=event.data)


class AwardProjection:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.skipped_total = 0
        self.awards_total = 0

    async def apply_page(self, session: AsyncSession, events: Sequence[FeedEvent]) -> None:
        batch = [registry_event(e) for e in events]
        state = await load_page_state(session, self.engine, batch)
        outputs = []
        skipped = []
        for event in batch:
            try:
                outputs.extend(self.engine.apply(state, event))
            except UnknownEventType:
                log.warning("skipping event of unknown type %s at position %s", event.type, event.position)
                skipped.append({"position": event.position, "event_id": event.id, "type": event.type,
                                "reason": "unknown event type"})
            except MalformedEvent as exc:
                log.warning("skipping malformed event at position %s: %s", event.position, exc)
                skipped.append({"position": event.position, "event_id": event.id, "type": event.type,
                                "reason": f"malformed: {exc}"[:2000]})
        await write_page(session, state, outputs, skipped)
        self.skipped_total += len(skipped)
        self.awards_total += len(outputs)


class NotifyingSink:
    """SqlProjectionSink plus a callback after each commit (wakes the award feed's long polls and SSE)."""

    def __init__(self, db: AsyncEngine, projection: AwardProjection, after_commit: Callable[[], None],
                 feed: str = REGISTRY_FEED) -> None:
        self._inner = SqlProjectionSink(db, t.feed_tracking, feed, projection.apply_page)
        self._after_commit = after_commit

    async def position(self) -> int:
        return await self._inner.position()

    async def apply(self, events: Sequence[FeedEvent], position: int) -> None:
        await self._inner.apply(events, position)
        self._after_commit()


class BatchingSource:
    """While catching up, applies up to `max_pages` feed pages in one transaction: the feed serves at most 1,000
    events a page, and each transaction has a fixed cost (round trips, a commit that waits for the disk) that larger
    batches share. Pages are merged only while the feed says more is already there (`next_after < head`), so a
    live follower still applies each event as soon as it arrives. The merged page carries the position of its
    last page: the events and that position are applied together or not at all, exactly as for a single page,
    and the decisions do not depend on where the pages are cut."""

    def __init__(self, source, max_pages: int) -> None:
        self._source = source
        self._max_pages = max_pages

    async def follow(self, after: int) -> AsyncIterator[FeedPage]:
        pending: FeedPage | None = None
        pages = 0
        async for page in self._source.follow(after):
            pages += 1
            if pending is not None:
                page = FeedPage.model_construct(events=pending.events + page.events,
                                                next_after=max(pending.next_after, page.next_after),
                                                head=max(pending.head, page.head))
                pending = None
            if page.next_after < page.head and pages < self._max_pages:
                pending = page  # more is already there: read it before applying
                continue
            pages = 0
            yield page


class PrefetchingSource:
    """Reads the next page of the feed while the current one is being applied (catch-up is then bounded by the
    slower of the two, not their sum). Order and positions are untouched: pages are yielded as read."""

    def __init__(self, client: FeedClient, depth: int = 2, wait: float = 20.0) -> None:
        self._client = client
        self._depth = depth
        self._wait = wait

    async def follow(self, after: int) -> AsyncIterator[FeedPage]:
        queue: asyncio.Queue[FeedPage] = asyncio.Queue(maxsize=self._depth)

        async def produce() -> None:
            async for page in self._client.follow(after, wait=self._wait):
                await queue.put(page)

        producer = asyncio.create_task(produce(), name="feed-prefetch")
        try:
            while True:
                getter = asyncio.ensure_future(queue.get())
                await asyncio.wait({getter, producer}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    yield getter.result()
                    continue
                getter.cancel()
                producer.result()  # the reader failed (e.g. 401): let the follower record it and restart
                raise RuntimeError("feed reader stopped")
        finally:
            producer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await producer
