"""Public events rendered once, ever (PostgreSQL): the feed keeps each page it renders in registry_rendered_events
(migration 0007) and serves later reads of that stretch from there, in any process, after any restart."""

from __future__ import annotations

import logging
import queue
import threading
from typing import NamedTuple

from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg import Error as DatabaseError
from psycopg.rows import tuple_row

from tcr_shared.feeds.server import RenderedEvent

# The version of the public JSON of an event. Change it with anything that changes those bytes for an event already
# stored: the mapping (public_events.py), the FeedEvent envelope, an upcast of a stored event's class. Rows of
# another version are then rendered again (and replaced) as readers reach them.
RENDERING = 1

_TABLE = "public.registry_rendered_events"
_READ = f"SELECT position, previous, type, json, rendering FROM {_TABLE} WHERE position > %s ORDER BY position LIMIT %s"
_STORE = f"""
INSERT INTO {_TABLE} AS kept (position, previous, type, json, rendering)
SELECT position, previous, type, json, %s FROM unnest(%b::int8[], %b::int8[], %b::text[], %b::bytea[])
    AS page(position, previous, type, json)
ON CONFLICT (position) DO UPDATE
    SET previous = LEAST(kept.previous, excluded.previous), type = excluded.type, json = excluded.json,
        rendering = excluded.rendering
    WHERE kept.rendering <> excluded.rendering OR excluded.previous < kept.previous
"""

# Pages rendered and waiting to be kept: beyond this the keeper is behind and a page is not kept (a later reader
# renders it again). About 0.7 MB a page of 1,000.
KEEP_BACKLOG = 16

log = logging.getLogger("tcr.registry.feed")


class StoredStretch(NamedTuple):
    """Every position of the log in (after, positions[-1]], each with its event (None: not a public event)."""

    positions: list[int]
    events: list[RenderedEvent | None]


class RenderedStore:
    """Reads and keeps rendered pages. A row says that no position of the log lies strictly between its `previous`
    and its `position`: a read of the log after `a` returns every position after `a` (a position is visible only
    once every lower one is committed, and none is ever reused), so its first row follows `a` and each next row the
    one before. Rows read back are served only while that chain holds from the reader's `after`: a stretch never
    stored (or stored by another rendering) is a break, and the log is read from there."""

    def __init__(self, recorder: object, backlog: int = KEEP_BACKLOG) -> None:
        self._recorder = recorder
        self._usable: bool | None = None
        self._pending: queue.Queue[tuple[int, StoredStretch] | None] = queue.Queue(backlog)
        self._keeper: threading.Thread | None = None
        self._starting = threading.Lock()

    def usable(self) -> bool:
        """The registry's own events table on PostgreSQL, with the migration that creates the store applied (a
        store opened without the registry's migrations, as some tests do, renders every read as before)."""
        if self._usable is None:
            recorder = self._recorder
            usable = (
                isinstance(recorder, PostgresApplicationRecorder)
                and recorder.events_table_name == "registry_events"
                and recorder.datastore.schema == "public"
            )
            if usable:
                try:
                    with recorder.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
                        found = curs.execute(f"SELECT to_regclass('{_TABLE}')").fetchone()
                    usable = found is not None and found[0] is not None
                except DatabaseError:
                    return False  # asked again at the next read
            self._usable = usable
        return self._usable

    def read(self, after: int, limit: int) -> StoredStretch:
        """The stored stretch right after `after`, at most `limit` positions; empty where none is."""
        positions: list[int] = []
        events: list[RenderedEvent | None] = []
        if not self.usable():
            return StoredStretch(positions, events)
        try:
            with self._recorder.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
                rows = curs.execute(_READ, (after, limit), prepare=True).fetchall()
        except DatabaseError as error:
            log.warning("rendered events could not be read (the log is rendered instead): %s", error)
            return StoredStretch(positions, events)
        last = after
        for position, previous, type_, json, rendering in rows:
            if previous > last or rendering != RENDERING:
                break
            positions.append(position)
            events.append(None if type_ is None else RenderedEvent(position, type_, bytes(json)))
            last = position
        return StoredStretch(positions, events)

    def keep(self, after: int, stretch: StoredStretch) -> None:
        """Keep what a read of the log after `after` rendered, in the keeper's thread: the reader does not wait
        for the write (it doubled a first read's time). Best effort: a page not kept (the keeper behind, a
        database that refuses the write) only costs a later reader a rendering."""
        if not stretch.positions or not self.usable():
            return
        with self._starting:
            if self._keeper is None:
                self._keeper = threading.Thread(target=self._keep_pending, name="feed-rendered-keeper", daemon=True)
                self._keeper.start()
        try:
            self._pending.put_nowait((after, stretch))
        except queue.Full:
            log.debug("rendered events after %d not kept: the keeper is behind", after)

    def settle(self) -> None:
        """Wait until every page handed to `keep` is written (or given up)."""
        self._pending.join()

    def close(self, timeout: float) -> None:
        """Write what is pending and stop the keeper (before the store's connections close)."""
        with self._starting:
            keeper, self._keeper = self._keeper, None
        if keeper is not None:
            self._pending.put(None)
            keeper.join(timeout)

    def _keep_pending(self) -> None:
        while True:
            item = self._pending.get()
            try:
                if item is None:
                    return
                self._write(*item)
            finally:
                self._pending.task_done()

    def _write(self, after: int, stretch: StoredStretch) -> None:
        previous = [after, *stretch.positions[:-1]]
        types = [None if event is None else event.type for event in stretch.events]
        jsons = [None if event is None else event.json for event in stretch.events]
        try:
            with self._recorder.datastore.get_connection() as conn, conn.cursor() as curs:
                curs.execute(_STORE, (RENDERING, stretch.positions, previous, types, jsons))
        except DatabaseError as error:
            log.warning("rendered events could not be kept (later readers render them again): %s", error)
