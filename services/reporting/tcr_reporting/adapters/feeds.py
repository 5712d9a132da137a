"""The two followed feeds: the shared `Follower` over the shared `FeedClient`, with a page source that also
reports whether the publisher can be reached (a subsidy service that is not running is a normal state:
reporting keeps working and /v1/status says what is wrong)."""
from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx

from tcr_shared.language.events.envelope import FeedPage
from tcr_shared.feeds.client import Backoff, FeedClient, FeedUnavailable
from tcr_shared.feeds.follower import Follower
from tcr_shared.feeds.projection_store import SqlProjectionSink


@dataclass
class Reachability:
    url: str
    reachable: bool | None = None  # None: not tried yet
    last_error: str | None = None
    last_contact_at: float | None = None
    failures: int = 0

    def as_dict(self) -> dict:
        return {"url": self.url, "reachable": self.reachable, "feed_error": self.last_error,
                "last_contact_at": self.last_contact_at, "consecutive_failures": self.failures}


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


@dataclass
class FollowedFeed:
    name: str
    follower: Follower
    source: ObservedFeed
    client: FeedClient

    def status(self) -> dict:
        body = self.follower.status.as_dict()
        body.update(self.source.reach.as_dict())
        body["error"] = body.get("feed_error") or body.get("last_error")
        return body


def followed_feed(name: str, url: str, key: str, sink: SqlProjectionSink, wait: float) -> FollowedFeed:
    client = FeedClient(url, key, page_size=1000)
    source = ObservedFeed(client, wait=wait)
    return FollowedFeed(name, Follower(name, source, sink), source, client)
