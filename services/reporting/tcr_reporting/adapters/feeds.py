"""The two followed feeds: the shared `Follower` over the shared `FeedClient`, with a page source that also
reports whether the publisher can be reached (a subsidy service that is not running is a normal state:
reporting keeps working and /v1/status says what is wrong)."""

from __future__ import annotations

from dataclasses import dataclass

from tcr_shared.feeds.client import FeedClient
from tcr_shared.feeds.follower import Follower
from tcr_shared.feeds.projection_store import SqlProjectionSink
from tcr_shared.feeds.sources import ObservedFeed


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
    name: str, url: str, key: str, sink: SqlProjectionSink, wait: float, stall_after: float
) -> FollowedFeed:
    client = FeedClient(url, key, page_size=1000)
    source = ObservedFeed(client, wait=wait)
    return FollowedFeed(name, Follower(name, source, sink, stall_after=stall_after), source, client)
