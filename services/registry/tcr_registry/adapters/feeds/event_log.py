"""The registry's notification log, read as the public feed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from eventsourcing.utils import resolve_topic

from tcr_registry.adapters.feeds.public_events import is_public_class, to_feed_event
from tcr_registry.adapters.persistence.event_store import Registry
from tcr_shared.language.events.envelope import FeedPage


class RegistryEventLog:
    """Reads committed notifications in order. The event store's insert lock guarantees that a position is
    only visible once every lower position is committed, so a reader that moves past it never skips."""

    def __init__(self, app: Registry) -> None:
        self._app = app

    async def read(self, after: int, limit: int) -> FeedPage:
        return await asyncio.to_thread(self.read_sync, after, limit)

    def read_sync(self, after: int, limit: int) -> FeedPage:
        recorder = self._app.recorder
        notifications = recorder.select_notifications(start=after, limit=limit, inclusive_of_start=False)
        events = []
        to_domain_event = self._app.mapper.to_domain_event
        for notification in notifications:
            # Only public events are decoded: the class is known from the topic (as the mapper resolves it).
            if is_public_class(resolve_topic(notification.topic)):
                events.append(to_feed_event(to_domain_event(notification), notification.id))
        next_after = notifications[-1].id if notifications else after
        if notifications and len(notifications) < limit:
            head = next_after  # this page reached the end of the log
        else:
            head = recorder.max_notification_id() or 0
        return FeedPage(events=events, next_after=next_after, head=max(head, next_after))

    async def head(self) -> int:
        return await asyncio.to_thread(lambda: self._app.recorder.max_notification_id() or 0)


class LazyEventLog:
    """The event log as routes and workers see it: they are built before the log exists (at startup)."""

    def __init__(self, current: Callable[[], RegistryEventLog | None]) -> None:
        self._current = current

    async def read(self, after: int, limit: int) -> FeedPage:
        return await self._current().read(after, limit)

    async def head(self) -> int:
        return await self._current().head()
