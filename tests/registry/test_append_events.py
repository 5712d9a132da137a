"""The registry's one-statement append on PostgreSQL (registry_append_events, migration 0006): the same guarantees
as the library's transaction it replaces. Positions follow the order of the events given, a batch and its
idempotency receipts are stored together or not at all, and a batch that conflicts stores nothing."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime

import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent
from sqlalchemy import create_engine, text

from tcr_registry.adapters.persistence import migrate
from tcr_registry.adapters.persistence.event_store import Registry
from tcr_registry.adapters.persistence.receipts import Receipt
from tcr_shared.platform.audit import AuditEntry
from tcr_shared.platform.database import Database

TOPIC = "tcr_registry.domain.contract:Contract.Submitted"


@pytest.fixture
def store(make_pg_database, tmp_path):
    database = Database.for_service(make_pg_database(), tmp_path, "registry")
    migrate.upgrade(database)
    app = Registry(database.eventsourcing_env())
    engine = create_engine(database.sync_url)
    try:
        yield app, engine
    finally:
        engine.dispose()
        app.close()


def events(count: int, version: int = 1) -> list[StoredEvent]:
    return [StoredEvent(uuid.uuid4(), version, TOPIC, b'{"n": %d}' % i) for i in range(count)]


def receipt(key: str, last_event: int) -> Receipt:
    made = Receipt("key-1", key, "hash-" + key, 201, refer=lambda result: result)
    made.reference = {"contract_id": key, "version": 1}
    made.last_event = last_event
    return made


def test_a_batch_takes_positions_in_the_order_given_with_its_receipts(store):
    app, engine = store
    recorder = app.recorder
    assert recorder._can_append()  # the function is there: this test is about it
    batch = events(7)
    receipts = [receipt("a", 2), receipt("b", 6)]
    positions = recorder.insert_events(batch, receipts=receipts)
    assert positions == list(range(positions[0], positions[0] + 7))
    stored = recorder.select_notifications(positions[0], 7)
    assert [(n.id, n.originator_id, n.state) for n in stored] == [
        (p, e.originator_id, e.state) for p, e in zip(positions, batch, strict=True)
    ]
    assert [r.position for r in receipts] == [positions[2], positions[6]]
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT idempotency_key, position, reference FROM idempotency_records ORDER BY idempotency_key")
        ).all()
    assert [tuple(row) for row in rows] == [
        ("a", positions[2], {"contract_id": "a", "version": 1}),
        ("b", positions[6], {"contract_id": "b", "version": 1}),
    ]


def test_audit_entries_are_stored_in_the_batch_transaction(store):
    app, engine = store
    recorder = app.recorder
    assert recorder.stores_audit()
    at = datetime.now(UTC)
    entry = AuditEntry(at, "key-1", "point", "p1", "contract.submit", None, "POST", "/v1/contracts", "127.0.0.1", 201)
    recorder.insert_events(events(2), audits=[entry, entry])
    twice = events(1)[0]
    with pytest.raises(IntegrityError):  # a refused batch (one event twice) leaves no entry behind
        recorder.insert_events([*events(1), twice, twice], audits=[entry])
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT at, key_id, action, path, address, outcome FROM audit_log")).all()
    assert [tuple(row) for row in rows] == [(at, "key-1", "contract.submit", "/v1/contracts", "127.0.0.1", 201)] * 2


def test_a_conflicting_batch_stores_nothing(store):
    app, engine = store
    recorder = app.recorder
    first = events(2)
    positions = recorder.insert_events(first)
    clash = [*events(3), first[1]]  # an aggregate version already stored: the whole batch is refused
    with pytest.raises(IntegrityError):
        recorder.insert_events(clash, receipts=[receipt("c", 3)])
    assert recorder.max_notification_id() == positions[-1]
    assert [n.id for n in recorder.select_notifications(1, 100)] == list(positions)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM idempotency_records")).scalar_one() == 0


def test_concurrent_batches_never_interleave(store):
    """Two writers appending at once: each batch's positions are contiguous (the table lock), so a reader that saw
    position p has seen every position below it."""
    app, _ = store
    recorder = app.recorder
    results: list[list[int]] = []
    lock = threading.Lock()

    def write() -> None:
        for _ in range(20):
            positions = recorder.insert_events(events(5))
            with lock:
                results.append(list(positions))

    threads = [threading.Thread(target=write) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 60
    for positions in results:
        assert positions == list(range(positions[0], positions[0] + 5))
    every = sorted(p for positions in results for p in positions)
    assert every == list(range(every[0], every[0] + 300))
    assert [n.id for n in recorder.select_notifications(every[0], 300)] == every
