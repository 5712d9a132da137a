"""Large batches on PostgreSQL: an import's group commit goes through the event store's COPY path (batches of
ReceiptsPostgresRecorder.COPY_FROM_EVENTS events or more), with every guarantee of a single write: feed readers
paging at the same time see every event once and in order while single writes commit beside the import, the
notification ids the writer answers are the stored ones, registration numbers stay gap-free, individuals' data is
encrypted, the contract index lists every contract, a batch that conflicts stores nothing, and importing the same
file again registers nothing."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from eventsourcing.persistence import IntegrityError
from sqlalchemy import text

from tcr_registry.adapters.imports.terms import read_terms
from tcr_registry.adapters.persistence.receipts import ReceiptsPostgresRecorder
from tcr_registry.domain.contract import Contract
from tests.registry.test_feed_concurrency import _assert_saw_everything, _read_until
from tests.registry.test_import import contract_id, csv_file, imported, row
from tests.registry.test_personal_data import id_number
from tests.support.registry import RegistryEnv, contract_body, registry_in_process

ROWS = 150  # every row certified: 300 contract events and the book's 150 numbers, in one or two commits


async def _stored(env: RegistryEnv) -> list[tuple[int, str, bytes]]:
    async with env.runtime.engine.connect() as conn:
        query = text("SELECT notification_id, topic, state FROM registry_events ORDER BY notification_id")
        return [(n, topic, bytes(state)) for n, topic, state in (await conn.execute(query)).all()]


async def test_a_large_import_keeps_every_guarantee_of_single_writes(make_pg_database, tmp_path):
    url = make_pg_database("tcr_registry_batches")
    async with registry_in_process(url, tmp_path) as client:
        env = RegistryEnv(client, "postgresql", url)
        point = await env.point("6401")
        person = id_number()
        seller = {"seller_kind": "individual", "seller_name": "孙思邈", "seller_id_number": person,
                  "seller_credit_code": ""}  # fmt: skip
        rows = [
            row(f"L-{n:04d}", certify="yes", certified_at="2025-03-10T10:00:00+08:00", **(seller if n == 7 else {}))
            for n in range(ROWS)
        ]
        content = csv_file(rows)
        done = asyncio.Event()
        reader = asyncio.create_task(_read_until(env, done, limit=5))
        single = [env.submit(point) for _ in range(20)]
        job, *_ = await asyncio.gather(imported(env, point.headers, content), *single)
        done.set()
        positions, _ = await asyncio.wait_for(reader, 60)

        assert (job["status"], job["registered"], job["certified"], job["rejected"]) == ("done", ROWS, ROWS, 0)
        full = [e["position"] for e in await env.feed()]
        assert len(full) == 2 * ROWS + 20
        _assert_saw_everything(positions, full)
        stored = await _stored(env)
        assert [n for n, topic, _ in stored if "Contract" in topic] == full
        # Registration numbers: 1..ROWS in row order, no gap, none twice.
        numbers = []
        for n in range(ROWS):
            r = await client.get(f"/v1/contracts/{contract_id(point.id, f'L-{n:04d}')}", headers=point.headers)
            assert r.status_code == 200 and r.json()["status"] == "certified", r.text
            numbers.append(int(r.json()["registration_number"][-6:]))
        assert numbers == list(range(1, ROWS + 1))
        # The individual's name and identity number are sealed in the store, and read back in clear.
        states = b"\n".join(state for _, _, state in stored).decode()
        assert person not in states and "孙思邈" not in states and "pii:v1:" in states
        r = await client.get(f"/v1/contracts/{contract_id(point.id, 'L-0007')}", headers=point.headers)
        assert (r.json()["seller"]["name"], r.json()["seller"]["id_number"]) == ("孙思邈", person)
        # The contract index lists every contract, as after single writes.
        await env.index_caught_up()
        assert len((await env.list(point.headers, limit=500))["contracts"]) == ROWS + 20

        head = await env.head()
        again = await imported(env, point.headers, content)
        assert (again["registered"], again["already_registered"]) == (0, ROWS)
        assert await env.head() == head


async def test_a_copied_batch_answers_the_stored_positions_and_stores_nothing_when_it_conflicts(
    make_pg_database, tmp_path
):
    url = make_pg_database("tcr_registry_copy")
    async with registry_in_process(url, tmp_path) as client:
        env = RegistryEnv(client, "postgresql", url)
        registry = env.runtime.app
        assert isinstance(registry.recorder, ReceiptsPostgresRecorder)
        await env.submit(await env.point("6401"))  # something before: the copy's positions do not start at 1
        before = await _stored(env)
        terms = read_terms(contract_body())
        count = ReceiptsPostgresRecorder.COPY_FROM_EVENTS + 1
        contracts = [Contract.submit(uuid.uuid4(), "p", terms, datetime.now(UTC)) for _ in range(count)]
        events = [event for contract in contracts for event in contract.collect_events()]

        recordings = await asyncio.to_thread(registry.save_events, events)
        stored = await _stored(env)
        assert [r.notification.id for r in recordings] == [n for n, _, _ in stored[len(before) :]]
        assert [r.notification.originator_id for r in recordings] == [c.id for c in contracts]
        assert registry.repository.get(contracts[-1].id).terms == terms

        # One event of the batch is already stored: the whole batch is refused and leaves nothing behind.
        fresh = [Contract.submit(uuid.uuid4(), "p", terms, datetime.now(UTC)) for _ in range(count)]
        clash = [event for contract in fresh for event in contract.collect_events()] + events[:1]
        with pytest.raises(IntegrityError):
            await asyncio.to_thread(registry.save_events, clash)
        assert await _stored(env) == stored
