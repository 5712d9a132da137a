"""The two followed feeds: the shared `Follower` over the shared `FeedClient`, with a page source that also
reports whether the publisher can be reached (a subsidy service that is not running is a normal state:
reporting keeps working and /v1/status says what is wrong)."""

from __future__ import annotations

from dataclasses import dataclass

from tcr_shared.feeds.client import FeedClient
from tcr_shared.feeds.follower import Follower
from tcr_shared.feeds.projection_store import SqlProjectionSink
from tcr_shared.feeds.sources import BatchingSource, ObservedFeed, PrefetchingSource


@dataclass
class FollowedFeed:
    name: str
    follower: Follower
    source: ObservedFeed
    client: FeedClient

    def status(self) -> dict:
        """The follower's honest status (`state`; `head` and `lag` null until known; `stuck` and `stalled_since`)
        with the publisher's reachability, and `error`: whichever failure is current."""
        body = self.follower.status.as_dict()
        body.update(self.source.reach.as_dict())
        stuck = body.get("stuck") or {}
        body["error"] = body.get("feed_error") or body.get("last_error") or stuck.get("error")
        return body


def followed_feed(
    name: str,
    url: str,
    key: str,
    sink: SqlProjectionSink,
    wait: float,
    stall_after: float,
    *,
    batch_pages: int = 1,
    prefetch: int = 0,
) -> FollowedFeed:
    """`batch_pages` > 1: while catching up, that many pages are merged into one transaction (the projection
    folds a batch in memory and writes each table once); `prefetch` pages are read while a batch is applied."""
    client = FeedClient(url, key, page_size=1000)
    observed = ObservedFeed(client, wait=wait)
    source = PrefetchingSource(observed, depth=prefetch) if prefetch else observed
    if batch_pages > 1:
        source = BatchingSource(source, batch_pages)
    return FollowedFeed(name, Follower(name, source, sink, stall_after=stall_after), observed, client)
