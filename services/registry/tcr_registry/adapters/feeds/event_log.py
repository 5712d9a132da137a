"""The registry's notification log, read as the public feed."""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Callable

from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.utils import resolve_topic
from psycopg import InterfaceError, OperationalError
from psycopg.sql import SQL, Identifier

from tcr_registry.adapters.feeds.public_events import is_public_class, render, to_feed_event
from tcr_registry.adapters.persistence.event_store import Registry
from tcr_shared.feeds.server import RenderedPage
from tcr_shared.language.events.envelope import FeedPage

# Rendered public events kept by position: ~1 KB each, so the default holds the last ~100 MB a catching-up
# reader is most likely to ask for again (several partners and followers reading the same stretch of history).
RENDERED_CACHE_EVENTS = 100_000


class RenderedEvents:
    """A bounded LRU of each public event's JSON by position. Events are immutable facts and a position never
    changes hands, so an entry never goes stale; a lock because feed reads run in worker threads."""

    def __init__(self, capacity: int = RENDERED_CACHE_EVENTS) -> None:
        self._capacity = capacity
        self._entries: OrderedDict[int, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, position: int) -> bytes | None:
        with self._lock:
            body = self._entries.get(position)
            if body is not None:
                self._entries.move_to_end(position)
            return body

    def put(self, position: int, body: bytes) -> None:
        with self._lock:
            self._entries[position] = body
            if len(self._entries) > self._capacity:
                self._entries.popitem(last=False)


class RegistryEventLog:
    """Reads committed notifications in order. The event store's insert lock guarantees that a position is
    only visible once every lower position is committed, so a reader that moves past it never skips."""

    def __init__(self, app: Registry, rendered: RenderedEvents | None = None) -> None:
        self._app = app
        self._rendered = rendered if rendered is not None else RenderedEvents()

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
        next_after, head = self._bounds(
            notifications[-1].id if notifications else None, len(notifications), after, limit
        )
        return FeedPage(events=events, next_after=next_after, head=head)

    async def read_rendered(self, after: int, limit: int) -> RenderedPage:
        """The page `read` gives, as JSON bytes (what `GET /v1/events` serves): each event rendered once."""
        return await asyncio.to_thread(self.read_rendered_sync, after, limit)

    def read_rendered_sync(self, after: int, limit: int) -> RenderedPage:
        return self._read_cached(after, limit) or self._read_rendering(after, limit)

    def _read_cached(self, after: int, limit: int) -> RenderedPage | None:
        """The page when every public event in it is already rendered: only positions and topics are read (the
        stored state, most of each row, is not needed). None when one is missing, or off PostgreSQL."""
        recorder = self._app.recorder
        if not isinstance(recorder, PostgresApplicationRecorder):
            return None
        statement = SQL(
            "SELECT notification_id, topic FROM {schema}.{table} WHERE notification_id>%s "
            "ORDER BY notification_id LIMIT %s"
        ).format(schema=Identifier(recorder.datastore.schema), table=Identifier(recorder.events_table_name))
        try:
            with recorder.datastore.get_connection() as conn, conn.cursor() as curs:
                curs.execute(statement, (after, limit), prepare=True)
                rows = curs.fetchall()
        except (InterfaceError, OperationalError):
            return None  # the full read retries as the library does
        events = []
        for row in rows:
            body = self._rendered.get(row["notification_id"])
            if body is None:
                if is_public_class(resolve_topic(row["topic"])):
                    return None
                continue
            events.append(body)
        next_after, head = self._bounds(rows[-1]["notification_id"] if rows else None, len(rows), after, limit)
        return RenderedPage(events=events, next_after=next_after, head=head)

    def _read_rendering(self, after: int, limit: int) -> RenderedPage:
        notifications = self._app.recorder.select_notifications(start=after, limit=limit, inclusive_of_start=False)
        events = []
        to_domain_event = self._app.mapper.to_domain_event
        for notification in notifications:
            body = self._rendered.get(notification.id)
            if body is None:
                if not is_public_class(resolve_topic(notification.topic)):
                    continue
                body = render(to_feed_event(to_domain_event(notification), notification.id))
                self._rendered.put(notification.id, body)
            events.append(body)
        next_after, head = self._bounds(
            notifications[-1].id if notifications else None, len(notifications), after, limit
        )
        return RenderedPage(events=events, next_after=next_after, head=head)

    def _bounds(self, last: int | None, count: int, after: int, limit: int) -> tuple[int, int]:
        """(next_after, head) of a page of `count` positions ending at `last`."""
        next_after = last if last is not None else after
        if count and count < limit:
            head = next_after  # this page reached the end of the log
        else:
            head = self._app.recorder.max_notification_id() or 0
        return next_after, max(head, next_after)

    async def head(self) -> int:
        return await asyncio.to_thread(lambda: self._app.recorder.max_notification_id() or 0)


class LazyEventLog:
    """The event log as routes and workers see it: they are built before the log exists (at startup)."""

    def __init__(self, current: Callable[[], RegistryEventLog | None]) -> None:
        self._current = current

    async def read(self, after: int, limit: int) -> FeedPage:
        return await self._current().read(after, limit)

    async def read_rendered(self, after: int, limit: int) -> RenderedPage:
        return await self._current().read_rendered(after, limit)

    async def head(self) -> int:
        return await self._current().head()
