"""Page sources for `Follower`: where pages of a feed come from and how they are read.

- `ObservedFeed`: long-polls a publisher over HTTP and records whether it can be reached (for /v1/status);
- `PrefetchingSource`: reads the next pages while the current one is applied;
- `BatchingSource`: while catching up, merges several pages into one to apply in one transaction;
- `LocalFeed`: a publisher's own event log, read in process (the registry's contract index).

Every source yields pages in feed order with their `next_after`; none skips or repeats a position.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx

from tcr_shared.feeds.client import Backoff, FeedClient, FeedUnavailable
from tcr_shared.feeds.server import EventLog, NewEventsSignal, read_waiting
from tcr_shared.language.events.envelope import FeedPage


@dataclass
class Reachability:
    url: str
    reachable: bool | None = None  # None: not tried yet
    last_error: str | None = None
    last_contact_at: float | None = None
    failures: int = 0

    def as_dict(self) -> dict:
        return {
            "url": self.url,
            "reachable": self.reachable,
            "feed_error": self.last_error,
            "last_contact_at": self.last_contact_at,
            "consecutive_failures": self.failures,
        }


@dataclass
class ObservedFeed:
    """A `PageSource`: long-polls pages like `FeedClient.follow`, and records every failure to reach the
    publisher (down, refusing the key) instead of retrying silently."""

    client: FeedClient
    wait: float = 20.0
    reach: Reachability = field(init=False)

    def __post_init__(self) -> None:
        self.reach = Reachability(self.client.base_url)

    async def follow(self, after: int) -> AsyncIterator[FeedPage]:
        backoff = Backoff(initial=0.5, maximum=10.0)
        position = after
        wait = 0.0  # the first answer comes at once, so /v1/status shows the head right after start
        while True:
            try:
                page = await self.client.page(position, wait=wait)
            except (FeedUnavailable, httpx.HTTPStatusError, ValueError) as exc:
                self._failed(exc)
                await asyncio.sleep(backoff.next_delay())
                continue
            backoff.reset()
            self.reach.reachable = True
            self.reach.last_error = None
            self.reach.failures = 0
            self.reach.last_contact_at = time.time()
            yield page
            position = page.next_after
            wait = 0.0 if len(page.events) >= self.client.page_size else self.wait

    def _failed(self, exc: Exception) -> None:
        self.reach.reachable = False
        self.reach.failures += 1
        if isinstance(exc, httpx.HTTPStatusError):
            self.reach.last_error = f"HTTP {exc.response.status_code} from {self.client.base_url}"
        else:
            self.reach.last_error = str(exc)


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

    @property
    def reach(self) -> Reachability | None:
        """The wrapped source's view of whether the publisher answers (for the follower's `state`)."""
        return getattr(self._source, "reach", None)

    async def follow(self, after: int) -> AsyncIterator[FeedPage]:
        pending: FeedPage | None = None
        pages = 0
        async for page in self._source.follow(after):
            pages += 1
            if pending is not None:
                page = FeedPage.model_construct(
                    events=pending.events + page.events,
                    next_after=max(pending.next_after, page.next_after),
                    head=max(pending.head, page.head),
                )
                pending = None
            if page.next_after < page.head and pages < self._max_pages:
                pending = page  # more is already there: read it before applying
                continue
            pages = 0
            yield page


class PrefetchingSource:
    """Reads the next page of the feed while the current one is being applied (catch-up is then bounded by the
    slower of the two, not their sum). Order and positions are untouched: pages are yielded as read."""

    def __init__(self, source: ObservedFeed, depth: int = 2) -> None:
        self._source = source
        self._depth = depth

    @property
    def reach(self) -> Reachability | None:
        """The wrapped source's view of whether the publisher answers (for the follower's `state`)."""
        return getattr(self._source, "reach", None)

    async def follow(self, after: int) -> AsyncIterator[FeedPage]:
        queue: asyncio.Queue[FeedPage] = asyncio.Queue(maxsize=self._depth)

        async def produce() -> None:
            async for page in self._source.follow(after):
                await queue.put(page)

        producer = asyncio.create_task(produce(), name="feed-prefetch")
        getter: asyncio.Future | None = None
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
            if getter is not None and not getter.done():  # cancelled while waiting: no task left pending
                getter.cancel()
            producer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await producer


class LocalFeed:
    """A publisher's own log as a page source (no HTTP round trip), woken by its commit signal."""

    # A page applied costs about 2 ms of CPU whatever its size (the sink's transaction: lock, insert, advance) plus
    # about 25 microseconds an event: at 1,000 events/s, pages of ~100 spent a third of the contract index's share
    # of each request on the fixed part (docs/performance.md, `POST /v1/contracts`). An isolated write is applied
    # at once (the wait comes after its page); under sustained writes the follower trails by up to a quarter second.
    COALESCE_SECONDS = 0.25
    COALESCE_BELOW = 500  # events: a page this full is followed at once

    def __init__(self, log: EventLog, signal: NewEventsSignal, page_size: int = 1000) -> None:
        self._log = log
        self._signal = signal
        self._page_size = page_size

    async def follow(self, after: int) -> AsyncIterator[FeedPage]:
        position = after
        while True:
            page = await read_waiting(self._log, self._signal, position, self._page_size, 5.0)
            yield page
            position = page.next_after
            if len(page.events) < self.COALESCE_BELOW:
                # Under load, let events gather: one page of hundreds costs little more than a page of one.
                await asyncio.sleep(self.COALESCE_SECONDS)
