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
from dataclasses import asdict, astuple, dataclass, field, fields
from typing import Any

from eventsourcing.persistence import InterfaceError, OperationalError, ProgrammingError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
from eventsourcing.utils import retry
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier

from tcr_shared.platform.audit import AuditEntry

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

    def fields(self) -> dict[str, Any]:
        """What registry_append_events() stores of it (the position it finds from `last_event`)."""
        return {
            "key_id": self.key_id,
            "idempotency_key": self.idempotency_key,
            "request_hash": self.request_hash,
            "status_code": self.status_code,
            "reference": self.reference,
            "last_event": self.last_event,
        }

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


def _audit_fields(entry: AuditEntry) -> dict[str, Any]:
    """An audit entry as registry_append_events() reads it (JSON)."""
    return {**asdict(entry), "at": entry.at.isoformat()}


def _rows(receipts: Sequence[Receipt] | None, notification_ids: Sequence[int] | None) -> list[tuple]:
    if not receipts or not notification_ids:
        return []
    return [receipt.row(notification_ids) for receipt in receipts]


class ReceiptsPostgresRecorder(PostgresApplicationRecorder):
    """The library's PostgreSQL recorder (its table lock and notification ids unchanged), plus receipts; a batch
    appended in one statement, registry_append_events() (migration 0006), instead of the library's pipelined
    transaction; and a large batch (an import's group commit) copied in with COPY.

    Why one statement: the library's transaction is six statements in a pipeline plus an INSERT of one array of a
    composite type dumped in Python; on the writer thread that cost about 350 microseconds of CPU per batch plus
    30 per event, most of what persistence added to a `POST /v1/contracts` (docs/performance.md). The function
    takes the same lock timeout, the same EXCLUSIVE table lock and NOTIFY, inserts the events from parallel
    arrays (no composite type to dump row by row) and the receipts (one JSON parameter), all in the one implicit transaction of the call.

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
        if not stored_events or self.datastore.enable_db_functions:
            return super().insert_events(stored_events, **kwargs)  # retries as the library does
        if len(stored_events) >= self.COPY_FROM_EVENTS:
            return self._copy_events_in(stored_events, **kwargs)
        if self._can_append():
            return self._append_events(stored_events, **kwargs)
        return super().insert_events(stored_events, **kwargs)

    _append_statement = (
        # The arrays in binary (%b): psycopg dumps them with ~40% less CPU than as text (a batch of 10 events,
        # docs/performance.md).
        "SELECT * FROM registry_append_events(%b::uuid[], %b::int8[], %b::text[], %b::bytea[], %s, %s::json, %s::json)"
    )
    _can_append_cached: bool | None = None

    def _can_append(self) -> bool:
        """Whether registry_append_events() serves this recorder: the registry's own table in the default
        schema, keyed by uuid, and the migration that creates the function applied (a store opened without the
        registry's migrations keeps the library's way)."""
        if self._can_append_cached is None:
            usable = (
                self.events_table_name == "registry_events"
                and self.datastore.schema == "public"
                and self.datastore.originator_id_type == "uuid"
            )
            if usable:
                with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
                    found = curs.execute(
                        "SELECT to_regprocedure('public.registry_append_events(uuid[], bigint[], text[], bytea[], "
                        "text, json, json)')"
                    ).fetchone()
                usable = found is not None and found[0] is not None
            self._can_append_cached = usable
        return self._can_append_cached

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)  # the library's own retries, once
    def _append_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> list[int]:
        receipts: Sequence[Receipt] = kwargs.get("receipts") or ()
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            # Autocommit: the one statement is its own transaction (no BEGIN and COMMIT round trips).
            assert conn.autocommit
            curs.execute(
                self._append_statement,
                (
                    [event.originator_id for event in stored_events],
                    [event.originator_version for event in stored_events],
                    [event.topic for event in stored_events],
                    [event.state for event in stored_events],
                    f"{self.datastore.lock_timeout}s",
                    # The receipts as one JSON array: one parameter, not six more arrays dumped in Python.
                    json.dumps([receipt.fields() for receipt in receipts]),
                    json.dumps([_audit_fields(entry) for entry in kwargs.get("audits") or ()]),
                ),
                prepare=True,
            )
            notification_ids = [n for (n,) in curs.fetchall()]
        if len(notification_ids) != len(stored_events):
            raise ProgrammingError(f"appended {len(stored_events)} events but got {len(notification_ids)} positions")
        for receipt in receipts:
            receipt.position = notification_ids[receipt.last_event] if receipt.last_event >= 0 else None
        return notification_ids

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
            audits = kwargs.get("audits")
            if audits:
                curs.executemany(self._insert_audit, [astuple(entry) for entry in audits])
        return notification_ids

    _insert_audit = "INSERT INTO audit_log ({}) VALUES ({})".format(
        ", ".join(f.name for f in fields(AuditEntry)), ", ".join("%s" for _ in fields(AuditEntry))
    )

    def stores_audit(self) -> bool:
        """Whether a batch's `audits` (tcr_shared.platform.audit entries) are stored in its transaction: by the
        function and the COPY path; the library's path (a store without migration 0006) ignores them."""
        return not self.datastore.enable_db_functions and self._can_append()

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
