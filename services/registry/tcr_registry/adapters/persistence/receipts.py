"""Idempotency receipts stored in the same transaction as the events they answer for.

Why: the receipt of a retried write used to be saved after the events committed, in another transaction; a crash
between the two left a certified contract without its receipt, and the retry was told 409 "a certified contract
cannot be certified". The event store's recorders below insert each command's receipt (who, which key, which
request, which contract version, which log position) inside the very transaction that inserts its events: either
both are stored or neither is. A receipt holds no answer body, only the contract version the answer showed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.persistence import InterfaceError, OperationalError, ProgrammingError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
from eventsourcing.utils import retry
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier

_COLUMNS = "key_id, idempotency_key, request_hash, status_code, headers, reference, position"


@dataclass
class Receipt:
    """What a retry with the same Idempotency-Key must be answered with."""

    key_id: str
    idempotency_key: str
    request_hash: str
    status_code: int
    refer: Callable[[Any], dict[str, Any]]  # the command's result -> the reference kept (no personal data)
    reference: dict[str, Any] | None = None
    last_event: int = -1  # index, among the events saved together, of this command's last event
    position: int | None = field(default=None)

    def row(self, notification_ids: Sequence[int]) -> tuple:
        self.position = notification_ids[self.last_event] if self.last_event >= 0 else None
        return (
            self.key_id,
            self.idempotency_key,
            self.request_hash,
            self.status_code,
            "{}",
            json.dumps(self.reference),
            self.position,
        )


def _rows(receipts: Sequence[Receipt] | None, notification_ids: Sequence[int] | None) -> list[tuple]:
    if not receipts or not notification_ids:
        return []
    return [receipt.row(notification_ids) for receipt in receipts]


class ReceiptsPostgresRecorder(PostgresApplicationRecorder):
    """The library's PostgreSQL recorder (its table lock and notification ids unchanged), plus receipts; and a
    large batch (an import's group commit) copied in with COPY instead of the library's INSERT ... unnest.

    Why COPY: the library sends a batch as one array of a composite type, which psycopg dumps in Python (about
    12,000 events/s, most of the import's store time); binary COPY rows are formatted in C (about 130,000
    events/s here). The guarantee is the library's own: the same transaction takes the same EXCLUSIVE table lock
    and NOTIFY first, so no other transaction draws notification ids until this one has committed, and a feed
    reader can still never pass a position that is not yet committed. Small batches (single writes) keep the
    library's pipelined path: there one round trip matters more than the dumping."""

    COPY_FROM_EVENTS = 200  # batches at least this large are copied

    _insert_receipts = (
        f"INSERT INTO idempotency_records ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s::json, %s::json, %s) "
        "ON CONFLICT DO NOTHING"
    )

    def _fetch_ids_after_insert_events(self, curs, stored_events: Sequence[StoredEvent], **kwargs: Any):
        notification_ids = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
        rows = _rows(kwargs.get("receipts"), notification_ids)
        if rows:
            curs.executemany(self._insert_receipts, rows)
        return notification_ids

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        if len(stored_events) < self.COPY_FROM_EVENTS or self.datastore.enable_db_functions:
            return super().insert_events(stored_events, **kwargs)  # retries as the library does
        return self._copy_events_in(stored_events, **kwargs)

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)  # the library's own retries, once
    def _copy_events_in(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int]:
        # psycopg has no COPY in pipeline mode: this transaction runs its statements one after the other.
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as curs:
            self._lock_table(curs)
            self._notify_channel(curs)
            before = curs.execute(self.max_notification_id_statement).fetchone()["max"] or 0
            with curs.copy(self._copy_events) as copy:
                copy.set_types([self.datastore.originator_id_type, "int8", "text", "bytea"])
                for event in stored_events:
                    copy.write_row((event.originator_id, event.originator_version, event.topic, event.state))
            notification_ids = self._ids_copied(curs, stored_events, before)
            rows = _rows(kwargs.get("receipts"), notification_ids)
            if rows:
                curs.executemany(self._insert_receipts, rows)
        return notification_ids

    @property
    def _copy_events(self) -> SQL:
        return SQL("COPY {0}.{1} (originator_id, originator_version, topic, state) FROM STDIN (FORMAT BINARY)").format(
            Identifier(self.datastore.schema), Identifier(self.events_table_name)
        )

    def _ids_copied(self, curs, stored_events: Sequence[StoredEvent], before: int) -> list[int]:
        """The notification ids the copied rows drew, in the order of `stored_events`: COPY draws each row's
        default from the sequence row by row, in input order, and under the table lock only this transaction
        adds rows (above `before`)."""
        select = SQL("SELECT notification_id FROM {0}.{1} WHERE notification_id > %s ORDER BY notification_id").format(
            Identifier(self.datastore.schema), Identifier(self.events_table_name)
        )
        with curs.connection.cursor(row_factory=tuple_row) as rows:
            drawn = [n for (n,) in rows.execute(select, (before,)).fetchall()]
        if len(drawn) != len(stored_events):
            raise ProgrammingError(f"copied {len(stored_events)} events but found {len(drawn)} new positions")
        return drawn


class ReceiptsSQLiteRecorder(SQLiteApplicationRecorder):
    _insert_receipts = f"INSERT OR IGNORE INTO idempotency_records ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"

    def _insert_events(self, c, stored_events: Sequence[StoredEvent], **kwargs: Any):
        notification_ids = super()._insert_events(c, stored_events, **kwargs)
        rows = _rows(kwargs.get("receipts"), notification_ids)
        if rows:
            c.executemany(self._insert_receipts, rows)
        return notification_ids
