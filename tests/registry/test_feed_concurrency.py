"""No skipped events on PostgreSQL: writers commit concurrently (through the API, and from two registry
instances, i.e. two writer threads with their own connections, as two processes would) while a reader pages
the feed with small pages as fast as it can. The reader must see every position exactly once, in increasing
order, and exactly the events of the full log. Registration numbers stay gap-free across the two writers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

from sqlalchemy import text

from tests.support.asserts import wait_until
from tests.support.registry import ADMIN, RegistryEnv, contract_body, party, registry_in_process

COUNTY = {"6401": "640104", "6402": "640205", "6403": "640302", "6404": "640402", "6405": "640502"}


async def _write(env: RegistryEnv, point, count: int, seed: int) -> int:
    """Submit `count` contracts, certifying or amending some: several events per request, some in one commit."""
    rng = random.Random(seed)
    appended = 0
    for _ in range(count):
        contract = await env.submit(point, seller=party("enterprise", COUNTY[point.jurisdiction]))
        appended += 1
        if rng.random() < 0.4:
            r = await env.client.post(
                f"/v1/contracts/{contract['id']}/certify", json={"expert_review_ref": "Z"}, headers=point.headers
            )
            assert r.status_code == 200, r.text
            appended += 1
    return appended


async def _read_until(env: RegistryEnv, writers_done: asyncio.Event, limit: int = 3) -> tuple[list[int], int]:
    """Page the feed as fast as possible until the writers are done and the head is reached."""
    positions: list[int] = []
    after, pages = 0, 0
    while True:
        r = await env.client.get("/v1/events", params={"after": after, "limit": limit}, headers=ADMIN)
        assert r.status_code == 200, r.text
        page = r.json()
        pages += 1
        positions += [e["position"] for e in page["events"]]
        moved = page["next_after"] > after
        after = page["next_after"]
        if not moved and writers_done.is_set() and after >= await env.head():
            return positions, pages


class _FollowerErrors(logging.Handler):
    """Collects errors the index followers log (e.g. two processes applying the same page)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []
        logging.getLogger("tcr.follower").addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record.getMessage())

    def detach(self) -> None:
        logging.getLogger("tcr.follower").removeHandler(self)


def _assert_saw_everything(positions: list[int], full: list[int]) -> None:
    assert positions == sorted(positions), "the reader saw positions out of order"
    assert len(positions) == len(set(positions)), "the reader saw a position twice"
    missing = sorted(set(full) - set(positions))
    assert not missing, f"the reader skipped {len(missing)} events: {missing[:20]}"
    assert positions == full


async def test_reader_never_skips_under_concurrent_writers(make_pg_database, tmp_path):
    url = make_pg_database("tcr_registry_skip")
    async with registry_in_process(url, tmp_path) as client:
        env = RegistryEnv(client, "postgresql", url)
        points = [await env.point(j) for j in COUNTY for _ in range(2)]
        done = asyncio.Event()
        reader = asyncio.create_task(_read_until(env, done))
        appended = await asyncio.gather(*(_write(env, p, 25, seed) for seed, p in enumerate(points)))
        done.set()
        positions, pages = await asyncio.wait_for(reader, 60)
        full = [e["position"] for e in await env.feed()]
        assert len(full) == sum(appended) == 10 * 25 + sum(a - 25 for a in appended)
        assert pages > 20  # the reader really ran alongside the writers
        _assert_saw_everything(positions, full)
        # Every committed event of the store is accounted for: the feed is the log minus the non-public
        # registration-book events.
        async with env.runtime.engine.connect() as conn:
            stored = (
                await conn.execute(text("SELECT notification_id, topic FROM registry_events ORDER BY notification_id"))
            ).all()
        assert [n for n, topic in stored if "Contract" in topic] == full


async def test_two_writers_on_one_database(make_pg_database, tmp_path):
    """Two registry instances (two writer threads and connection pools) append to one PostgreSQL log."""
    url = make_pg_database("tcr_registry_two")
    follower_errors = _FollowerErrors()
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(follower_errors.detach)
        client_a = await stack.enter_async_context(registry_in_process(url, tmp_path / "a"))
        client_b = await stack.enter_async_context(registry_in_process(url, tmp_path / "b"))
        a = RegistryEnv(client_a, "postgresql", url)
        b = RegistryEnv(client_b, "postgresql", url)
        points = [await a.point(j) for j in COUNTY]
        # A point's key works on either instance (same database).
        done = asyncio.Event()
        readers = [asyncio.create_task(_read_until(a, done)), asyncio.create_task(_read_until(b, done, limit=7))]
        writes = [_write(a if i % 2 else b, p, 20, i) for i, p in enumerate(points + points)]
        await asyncio.gather(*writes)
        done.set()
        full = [e["position"] for e in await a.feed()]
        assert full == [e["position"] for e in await b.feed()]
        assert len(full) >= 200
        for reader in readers:
            positions, _ = await asyncio.wait_for(reader, 60)
            _assert_saw_everything(positions, full)

        # Concurrent certifications for one point through both instances: gap-free, in commit order.
        point = points[0]
        contracts = await asyncio.gather(*(a.submit(point, signed_on="2024-06-01") for _ in range(30)))
        head = await a.head()

        async def certify(env, cid):
            return await env.client.post(
                f"/v1/contracts/{cid}/certify",
                json={"certified_at": "2024-07-01T10:00:00+08:00", "expert_review_ref": "Z"},
                headers=point.headers,
            )

        answers = await asyncio.gather(*(certify(a if i % 2 else b, c["id"]) for i, c in enumerate(contracts)))
        assert {r.status_code for r in answers} == {200}, [r.text for r in answers if r.status_code != 200][:2]
        numbers = sorted(int(r.json()["registration_number"][-6:]) for r in answers)
        assert numbers == list(range(1, 31))
        certified = [e for e in await a.feed(head) if e["type"].endswith("certified.v1")]
        assert [int(e["data"]["registration_number"][-6:]) for e in certified] == list(range(1, 31))

        # The same Idempotency-Key sent to both instances at once: one contract, both answers describe it.
        before = await a.head()
        body = contract_body(seller=party("enterprise", COUNTY[point.jurisdiction]))
        headers = {**point.headers, "Idempotency-Key": "twice-over-two-instances"}
        first, second = await asyncio.gather(
            a.client.post("/v1/contracts", json=body, headers=headers),
            b.client.post("/v1/contracts", json=body, headers=headers),
        )
        assert first.status_code == second.status_code == 201, (first.text, second.text)
        assert first.json()["id"] == second.json()["id"]
        assert [e["subject"] for e in await a.feed(before)] == [first.json()["id"]]

        # A stale cache on one instance neither refuses a valid action nor allows an invalid one. A submitted
        # contracts[0] (its writer remembers it as submitted); B certified it (i = 0).
        cid = contracts[0]["id"]
        r = await a.client.post(f"/v1/contracts/{cid}/revoke", json={"reason": "r"}, headers=point.headers)
        assert r.status_code == 200, r.text  # not "a submitted contract cannot be revoked"
        revoked_at = int(r.headers["TCR-Position"])
        # B remembers it as certified (it certified it): an amendment must now be refused, it is revoked.
        r = await b.client.post(
            f"/v1/contracts/{cid}/amend", json={"reason": "r", "changes": {"title": "t"}}, headers=point.headers
        )
        assert r.status_code == 409, r.text
        r = await b.client.get(f"/v1/contracts/{cid}", headers=point.headers)
        assert r.json()["status"] == "revoked" and r.headers["ETag"] == '"3"'

        # Both instances' contract-index followers share one table: each contract listed once, no errors.
        expected = len([e for e in await a.feed() if e["type"].endswith("submitted.v1")])
        analyst = await a.key("analyst")

        async def listed(env) -> list[str]:
            ids, token = [], None
            while True:
                page = await env.list(analyst, limit=500, **({"page_token": token} if token else {}))
                ids += [c["id"] for c in page["contracts"]]
                token = page["next_page_token"]
                if not token:
                    return ids

        async def complete() -> bool:
            return len(await listed(a)) == expected

        await wait_until(complete, what="the shared contract index to list every contract")
        assert len(set(await listed(b))) == expected
        # Every contract listed does not mean every change applied: the revocation came after the last
        # submission. A's follower has passed a position only once the shared table holds it (whichever
        # instance applied it), so wait for that, not for time.
        await a.index_caught_up(revoked_at)
        assert [c["status"] for c in (await a.list(analyst, status="revoked"))["contracts"]] == ["revoked"]
        assert follower_errors.records == [], follower_errors.records[:1]


async def test_a_late_commit_is_never_skipped(make_pg_database, tmp_path):
    """Deterministic version of the race: instance A's append is held up inside its transaction (a row it
    inserts collides with an uncommitted row of another transaction) while instance B appends. A reader must
    not be shown B's event, at a higher position, before A's commits; otherwise it passes A's position and
    never sees A's event. (Without the store's insert lock this test fails every time.)"""
    import uuid

    import psycopg

    from tcr_registry.adapters.http.contracts import _IDEMPOTENT_NAMESPACE

    url = make_pg_database("tcr_registry_late")
    async with contextlib.AsyncExitStack() as stack:
        a = RegistryEnv(await stack.enter_async_context(registry_in_process(url, tmp_path / "a")), "postgresql", url)
        b = RegistryEnv(await stack.enter_async_context(registry_in_process(url, tmp_path / "b")), "postgresql", url)
        point = await a.point("6401")
        await a.submit(point)  # warm up both instances' connections
        await b.submit(point)
        start = await a.head()
        key_id = (await a.client.get("/v1/whoami", headers=point.headers)).json()["key_id"]
        held_id = uuid.uuid5(_IDEMPOTENT_NAMESPACE, f"{key_id}:held-up")
        dsn = url
        blocker = await psycopg.AsyncConnection.connect(dsn)
        watcher = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
        try:
            await blocker.execute(
                "INSERT INTO registry_events (originator_id, originator_version, topic, state) VALUES (%s, 1, 'x', '')",
                (held_id,),
            )

            async def waiting() -> int:
                cursor = await watcher.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                    "current_database() AND wait_event_type = 'Lock'"
                )
                return (await cursor.fetchone())[0]

            held = asyncio.create_task(
                a.client.post(
                    "/v1/contracts", json=contract_body(), headers={**point.headers, "Idempotency-Key": "held-up"}
                )
            )
            await wait_until(waiting, what="instance A's append to wait inside its transaction")
            other = asyncio.create_task(b.client.post("/v1/contracts", json=contract_body(), headers=point.headers))

            async def b_committed_or_waiting() -> bool:
                return other.done() or await waiting() >= 2

            await wait_until(b_committed_or_waiting, what="instance B's append to commit or wait")
            r = await a.client.get("/v1/events", params={"after": start}, headers=ADMIN)
            seen = [e["position"] for e in r.json()["events"]]
            after = r.json()["next_after"]
            await blocker.rollback()
            first, second = await asyncio.wait_for(asyncio.gather(held, other), 30)
        finally:
            await blocker.close()
            await watcher.close()
        assert first.status_code == second.status_code == 201, (first.text, second.text)
        assert first.json()["id"] == str(held_id)
        seen += [e["position"] for e in await a.feed(after)]
        full = [e["position"] for e in await a.feed(start)]
        assert len(full) == 2
        _assert_saw_everything(seen, full)
