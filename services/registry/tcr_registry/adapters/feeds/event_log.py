"""The registry's notification log, read as the public feed."""

from __future__ import annotations

import asyncio
import threading
import time
from array import array
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable, Iterable

from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.utils import resolve_topic
from psycopg import InterfaceError, OperationalError
from psycopg.sql import SQL, Identifier

from tcr_registry.adapters.feeds.public_events import is_public_class, render_event, to_feed_event
from tcr_registry.adapters.feeds.rendered_store import RenderedStore, StoredStretch
from tcr_registry.adapters.persistence.event_store import Registry
from tcr_shared.feeds.server import RenderedEvent, RenderedPage
from tcr_shared.language.events.envelope import FeedPage

# Rendered public events kept by position: ~1 KB each, so the default holds the last ~100 MB a catching-up
# reader is most likely to ask for again (several partners and followers reading the same stretch of history).
RENDERED_CACHE_EVENTS = 100_000
# Positions of the stretch of the log known to be complete: 9 bytes each, so ~9 MB at most.
KNOWN_POSITIONS = 1_000_000
# How long a page may name the head read for an earlier page instead of asking the database again. Asking cost
# ~0.5 ms a page (a worker thread and a round trip), a third of serving a page from memory; this process's own
# commits move the head at once, so only another process's commits can show this much later.
HEAD_REUSE_SECONDS = 0.05


class RenderedEvents:
    """A bounded LRU of each public event's JSON by position. Events are immutable facts and a position never
    changes hands, so an entry never goes stale; a lock because feed reads run in worker threads."""

    def __init__(self, capacity: int = RENDERED_CACHE_EVENTS) -> None:
        self._capacity = capacity
        self._entries: OrderedDict[int, RenderedEvent] = OrderedDict()
        self._lock = threading.Lock()
        self.newest = 0  # the highest position ever rendered: nothing after it is here

    def get(self, position: int) -> RenderedEvent | None:
        with self._lock:
            body = self._entries.get(position)
            if body is not None:
                self._entries.move_to_end(position)
            return body

    def get_all(self, positions: Iterable[int]) -> list[RenderedEvent] | None:
        """Each position's event, in order (one lock for the page), or None when one is not rendered."""
        found = []
        with self._lock:
            entries = self._entries
            for position in positions:
                body = entries.get(position)
                if body is None:
                    return None
                entries.move_to_end(position)
                found.append(body)
        return found

    def put(self, position: int, body: RenderedEvent) -> None:
        with self._lock:
            self.newest = max(self.newest, position)
            self._entries[position] = body
            if len(self._entries) > self._capacity:
                self._entries.popitem(last=False)


class KnownPositions:
    """One stretch (start, through] of the log whose positions are all known, each with whether its event is
    public. A read of the log after `a` that ends at `b` returns every position in (a, b] (a position is visible only
    once every lower one is committed, and positions are never reused), so that stretch never changes: a page
    inside it needs no query. Reads extend the stretch at either end; a read beyond it (a reader jumping ahead)
    starts a new stretch there; the oldest positions are dropped beyond `capacity`."""

    def __init__(self, capacity: int = KNOWN_POSITIONS) -> None:
        self._capacity = capacity
        self._start = self._through = 0
        self._positions = array("q")
        self._public = bytearray()
        self._lock = threading.Lock()

    def page(self, after: int, limit: int) -> tuple[list[int], list[int], int] | None:
        """(positions, public positions, last) of up to `limit` known positions after `after`, `last` being the
        page's last position, or `after` when none is known after it; None when `after` is outside the stretch."""
        with self._lock:
            if not self._start <= after <= self._through or not self._positions:
                return None
            i = bisect_right(self._positions, after)
            positions = self._positions[i : i + limit].tolist()
            public = self._public[i : i + limit]
        return positions, [p for p, flag in zip(positions, public, strict=True) if flag], (positions or [after])[-1]

    def record(self, after: int, positions: list[int], public: list[bool]) -> None:
        """What one read after `after` returned: all the positions in (after, positions[-1]], in order."""
        if not positions:
            return
        last = positions[-1]
        with self._lock:
            if not self._positions or after > self._through:
                self._start, self._through = after, last
                self._positions, self._public = array("q", positions), bytearray(public)
            elif last > self._through and after >= self._start:
                i = bisect_right(positions, self._through)
                self._positions.extend(positions[i:])
                self._public.extend(public[i:])
                self._through = last
            elif after < self._start <= last:
                i = bisect_right(positions, self._start)
                self._positions[:0] = array("q", positions[:i])
                self._public[:0] = bytearray(public[:i])
                self._start = after
            excess = len(self._positions) - self._capacity
            if excess > 0:
                excess = max(excess, self._capacity // 4)  # amortised: a few large trims, not one per read
                self._start = self._positions[excess - 1]
                del self._positions[:excess]
                del self._public[:excess]


class RecentHead:
    """The log's head as last read, reused for `HEAD_REUSE_SECONDS` (a page's head is informative: readers use it
    to tell how far behind they are, never to choose what they read), raised at once by this process's commits."""

    def __init__(self, read: Callable[[], int], reuse_seconds: float = HEAD_REUSE_SECONDS) -> None:
        self._read = read
        self._reuse = reuse_seconds
        self._value = 0
        self._read_at = float("-inf")

    def recent(self) -> int | None:
        """The head if read within the reuse window, else None (the caller may not wait for the database)."""
        return self._value if time.monotonic() - self._read_at < self._reuse else None

    def get(self) -> int:
        """The head, from the database when the last read is too old."""
        value = self.recent()
        if value is None:
            read_at = time.monotonic()
            value = self._read()
            self._value, self._read_at = max(self._value, value), read_at
            value = self._value
        return value

    def committed(self, position: int) -> None:
        """This process committed through `position` (any thread: a plain max under the GIL is enough here)."""
        if position > self._value:
            self._value = position


class RegistryEventLog:
    """Reads committed notifications in order. The event store's insert lock guarantees that a position is
    only visible once every lower position is committed, so a reader that moves past it never skips."""

    def __init__(
        self, app: Registry, rendered: RenderedEvents | None = None, known: KnownPositions | None = None
    ) -> None:
        self._app = app
        self._rendered = rendered if rendered is not None else RenderedEvents()
        self._known = known if known is not None else KnownPositions()
        self._reads = _ThreadReads()
        self._head = RecentHead(lambda: self._app.recorder.max_notification_id() or 0)
        self._stored = RenderedStore(app.recorder)

    def committed(self, position: int) -> None:
        """The writer of this process committed events through `position`."""
        self._head.committed(position)

    def close(self, timeout: float = 10.0) -> None:
        """Refuse new reads and wait for those still running in threads. A cancelled reader's thread runs on, and
        closing the event store under a running SQLite read crashes the whole process (seen at shutdown)."""
        self._reads.close(timeout)
        self._stored.close(timeout)

    def settle(self) -> None:
        """Wait until the pages rendered so far are kept in the database (tests; the feed never waits)."""
        self._stored.settle()

    async def read(self, after: int, limit: int) -> FeedPage:
        return await asyncio.to_thread(self._reads.run, self.read_sync, after, limit)

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
        """The page `read` gives, as JSON bytes (what `GET /v1/events` serves): each event rendered once. A whole
        page known and rendered, with a recent head, is served on the event loop: no thread, no query."""
        page = self._page_from_memory(after, limit, self._head.recent())
        if page is not None:
            return page
        return await asyncio.to_thread(self._reads.run, self.read_rendered_sync, after, limit)

    def _page_from_memory(self, after: int, limit: int, head: int | None) -> RenderedPage | None:
        if head is None or self._reads.closed:
            return None
        known = self._known.page(after, limit)
        if known is None or len(known[0]) < limit:
            return None
        positions, public, last = known
        events = self._rendered.get_all(public)
        return None if events is None else RenderedPage(events, last, max(head, last))

    def read_rendered_sync(self, after: int, limit: int) -> RenderedPage:
        known = self._known.page(after, limit)
        if known is not None:
            positions, public, last = known
            events = self._rendered.get_all(public)
            if events is not None:
                if len(positions) == limit:  # a whole page from memory: no query but the head
                    return RenderedPage(events, last, max(self._head.get(), last))
                # The page reaches the end of what is known: the database has the rest (if anything).
                rest = self._read_database(last, limit - len(positions))
                return RenderedPage(events + rest.events, rest.next_after, rest.head)
        return self._read_database(after, limit)

    def _read_database(self, after: int, limit: int) -> RenderedPage:
        # Past the newest rendered event (a first read, a live reader at the head) the positions-and-topics read
        # could only be wasted: the full read renders.
        if self._rendered.newest > after and (page := self._read_cached(after, limit)) is not None:
            return page
        stored = self._stored.read(after, limit)
        if not stored.positions:
            return self._read_rendering(after, limit)
        self._remember(after, stored)
        events = [event for event in stored.events if event is not None]
        last = stored.positions[-1]
        if len(stored.positions) == limit:
            return RenderedPage(events, last, max(self._head.get(), last))
        rest = self._read_rendering(last, limit - len(stored.positions))  # the stored stretch ends before the page
        return RenderedPage(events + rest.events, rest.next_after, rest.head)

    def _remember(self, after: int, stretch: StoredStretch) -> None:
        """Keep a stretch read from the database in memory, for the readers that come next."""
        for event in stretch.events:
            if event is not None:
                self._rendered.put(event.position, event)
        self._known.record(after, stretch.positions, [event is not None for event in stretch.events])

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
        positions = [row["notification_id"] for row in rows]
        public = [is_public_class(resolve_topic(row["topic"])) for row in rows]
        events = self._rendered.get_all([p for p, flag in zip(positions, public, strict=True) if flag])
        if events is None:
            return None
        self._known.record(after, positions, public)
        next_after, head = self._bounds(positions[-1] if positions else None, len(positions), after, limit)
        return RenderedPage(events=events, next_after=next_after, head=head)

    def _read_rendering(self, after: int, limit: int) -> RenderedPage:
        notifications = self._app.recorder.select_notifications(start=after, limit=limit, inclusive_of_start=False)
        rendered: list[RenderedEvent | None] = []
        to_domain_event = self._app.mapper.to_domain_event
        for notification in notifications:
            event = None
            if is_public_class(resolve_topic(notification.topic)):
                event = self._rendered.get(notification.id)
                if event is None:
                    event = RenderedEvent(
                        notification.id, *render_event(to_domain_event(notification), notification.id)
                    )
                    self._rendered.put(notification.id, event)
            rendered.append(event)
        stretch = StoredStretch([n.id for n in notifications], rendered)
        self._known.record(after, stretch.positions, [event is not None for event in rendered])
        self._stored.keep(after, stretch)
        next_after, head = self._bounds(
            notifications[-1].id if notifications else None, len(notifications), after, limit
        )
        return RenderedPage(events=[event for event in rendered if event is not None], next_after=next_after, head=head)

    def _bounds(self, last: int | None, count: int, after: int, limit: int) -> tuple[int, int]:
        """(next_after, head) of a page of `count` positions ending at `last`."""
        next_after = last if last is not None else after
        if count and count < limit:
            head = next_after  # this page reached the end of the log
        else:
            head = self._head.get()
        return next_after, max(head, next_after)

    async def head(self) -> int:
        return await asyncio.to_thread(self._reads.run, lambda: self._app.recorder.max_notification_id() or 0)


class _ThreadReads:
    """Counts the log reads running in threads, so that closing waits for them and refuses new ones."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._running = 0
        self.closed = False

    def run(self, read: Callable, *args):
        with self._changed:
            if self.closed:
                raise RuntimeError("the registry's event log is closed")
            self._running += 1
        try:
            return read(*args)
        finally:
            with self._changed:
                self._running -= 1
                self._changed.notify_all()

    def close(self, timeout: float) -> None:
        with self._changed:
            self.closed = True
            self._changed.wait_for(lambda: self._running == 0, timeout)


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
