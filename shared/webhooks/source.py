"""Where the delivery worker reads events: the publisher's own log (`tcr_shared.feed_api.EventLog`, the same
object its `/v1/events` router serves), or any tcr feed over HTTP."""
from __future__ import annotations

from dataclasses import dataclass

from tcr_shared.events.envelope import FeedPage
from tcr_shared.feed_api import EventLog
from tcr_shared.feed_client import FeedClient

EventSource = EventLog


@dataclass
class FeedClientSource:
    """An `EventLog` read over HTTP (for a process that does not own the log)."""

    client: FeedClient

    async def read(self, after: int, limit: int) -> FeedPage:
        return await self.client.page(after, limit=limit)

    async def head(self) -> int:
        page = await self.client.page(0, limit=1)
        return max(page.head, page.next_after)
