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

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder

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
    """The library's PostgreSQL recorder (its table lock and notification ids unchanged), plus receipts."""

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


class ReceiptsSQLiteRecorder(SQLiteApplicationRecorder):
    _insert_receipts = f"INSERT OR IGNORE INTO idempotency_records ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"

    def _insert_events(self, c, stored_events: Sequence[StoredEvent], **kwargs: Any):
        notification_ids = super()._insert_events(c, stored_events, **kwargs)
        rows = _rows(kwargs.get("receipts"), notification_ids)
        if rows:
            c.executemany(self._insert_receipts, rows)
        return notification_ids
