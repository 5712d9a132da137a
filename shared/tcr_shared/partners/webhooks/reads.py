"""Reads of the publisher's log shared by every subscription's task.

Each subscription reads the log from its own cursor, page after page; subscriptions that follow the same stretch of
history (a backlog, or all of them at the head) ask for the same pages, because a page's `next_after` is where each
of them reads next. Reading a page (decoding its events) was done once per subscription; here a page is read once
and kept for the others. That is safe because a page never changes: its events are immutable and the log promises
that no event at or below `next_after` appears later. A page with no progress (`next_after <= after`: nothing new
yet) is never kept, so a subscription waiting at the head always asks the log again.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from tcr_shared.feeds.server import EventLog
from tcr_shared.language.events.envelope import FeedPage

PAGES_KEPT = 64  # the newest pages read (with the default batch of 100, 6,400 events)


class SharedReads:
    def __init__(self, source: EventLog, pages_kept: int = PAGES_KEPT) -> None:
        self.source = source
        self.pages_kept = pages_kept
        self._pages: OrderedDict[tuple[int, int], FeedPage] = OrderedDict()
        self._reading: dict[tuple[int, int], asyncio.Task] = {}

    async def read(self, after: int, limit: int) -> FeedPage:
        key = (after, limit)
        page = self._pages.get(key)
        if page is not None:
            self._pages.move_to_end(key)
            return page
        reading = self._reading.get(key)
        if reading is None:  # its own task: a subscription cancelled while waiting does not cancel the others' read
            reading = self._reading[key] = asyncio.create_task(self._read(key))
            return await asyncio.shield(reading)
        page = await asyncio.shield(reading)
        if page.next_after <= after:
            # Nothing new, from a read that began before this caller asked: an event appended (and its wake-up
            # rung) in between would be missed until the next poll. Ask the log again, after the caller's ticket.
            page = await self.source.read(after, limit)
        return page

    async def _read(self, key: tuple[int, int]) -> FeedPage:
        try:
            page = await self.source.read(*key)
        finally:
            del self._reading[key]
        if page.next_after > key[0]:
            self._pages[key] = page
            if len(self._pages) > self.pages_kept:
                self._pages.popitem(last=False)
        return page
