"""The public feed GET /v1/events: CloudEvents 1.0 with a `position`, pages (after, limit, next_after, head),
long polls that return as soon as an event is appended, stable event ids; and an old (v1) stored event that
still loads (upcast)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import datetime

from eventsourcing.persistence import StoredEvent

from tcr_registry.domain.contract import Contract
from tcr_shared.language.events import REGISTRY_EVENT_TYPES
from tests.support.asserts import assert_problem
from tests.support.registry import ADMIN, contract_body, registry_in_process


async def test_events_are_cloudevents_with_position(registry):
    point = await registry.point("6401")
    head = await registry.head()
    contract = await registry.certified(point)
    r = await registry.client.post(
        f"/v1/contracts/{contract['id']}/amend",
        json={"reason": "r", "changes": {"amount": "9100000.00"}},
        headers=point.headers,
    )
    assert r.status_code == 200
    r = await registry.client.get("/v1/events", params={"after": head}, headers=await registry.key("partner"))
    assert r.status_code == 200
    page = r.json()
    events = page["events"]
    assert [e["type"] for e in events] == [
        "tcr.registry.contract.submitted.v1",
        "tcr.registry.contract.certified.v1",
        "tcr.registry.contract.amended.v1",
    ]
    positions = [e["position"] for e in events]
    assert positions == sorted(set(positions)) and positions[0] > head
    assert page["next_after"] == page["head"] == await registry.head() >= positions[-1]
    for event in events:
        assert event["specversion"] == "1.0"
        assert event["source"] == "/tcr/registry"
        assert event["subject"] == contract["id"]
        assert event["datacontenttype"] == "application/json"
        uuid.UUID(event["id"])
        assert datetime.fromisoformat(event["time"]).utcoffset() is not None
        REGISTRY_EVENT_TYPES[event["type"]].model_validate(event["data"])  # the published schema holds
        assert event["data"]["contract_id"] == contract["id"]
    assert len({e["id"] for e in events}) == 3
    assert events[1]["data"]["registration_number"] == contract["registration_number"]
    assert events[1]["data"]["status"] == "certified" and events[2]["data"]["status"] == "certified"


async def test_pages_limit_and_next_after(registry):
    point = await registry.point("6401")
    start = await registry.head()
    for _ in range(3):
        await registry.certified(point)  # each certification also appends non-public registration-book events
    everything = await registry.feed(start)
    assert len(everything) == 6
    for limit in (1, 2, 5):
        seen, after, pages = [], start, 0
        while True:
            r = await registry.client.get("/v1/events", params={"after": after, "limit": limit}, headers=ADMIN)
            page = r.json()
            assert len(page["events"]) <= limit
            assert all(e["position"] > after for e in page["events"])
            if page["events"]:
                assert page["next_after"] >= page["events"][-1]["position"]
            seen += page["events"]
            if page["next_after"] == after:
                break
            after = page["next_after"]
            pages += 1
            assert pages < 100
        assert [e["id"] for e in seen] == [e["id"] for e in everything]
        assert after == await registry.head()
    # Reading at the head returns nothing and stays there.
    head = await registry.head()
    r = await registry.client.get("/v1/events", params={"after": head}, headers=ADMIN)
    assert r.json() == {"events": [], "next_after": head, "head": head}
    for params, field in (
        ({"limit": 0}, "query.limit"),
        ({"limit": 1001}, "query.limit"),
        ({"after": -1}, "query.after"),
        ({"wait": 31}, "query.wait"),
        ({"after": "x"}, "query.after"),
    ):
        assert_problem(await registry.client.get("/v1/events", params=params, headers=ADMIN), 422, field)


async def test_event_ids_are_stable_across_reads(registry):
    point = await registry.point("6401")
    head = await registry.head()
    await registry.certified(point)
    first = await registry.feed(head)
    second = await registry.feed(head)
    assert first == second
    one_by_one = []
    after = head
    while len(one_by_one) < 2:
        r = await registry.client.get("/v1/events", params={"after": after, "limit": 1}, headers=ADMIN)
        one_by_one += r.json()["events"]
        after = r.json()["next_after"]
    assert [e["id"] for e in one_by_one] == [e["id"] for e in first]


async def test_long_poll_returns_as_soon_as_an_event_is_appended(registry):
    point = await registry.point("6401")
    partner = await registry.key("partner")
    head = await registry.head()
    poll = asyncio.create_task(registry.client.get("/v1/events", params={"after": head, "wait": 20}, headers=partner))
    done, _ = await asyncio.wait({poll}, timeout=0.5)
    assert not done, "the long poll answered before any event existed"
    appended = time.monotonic()
    contract = await registry.submit(point)
    r = await asyncio.wait_for(poll, 10)
    assert time.monotonic() - appended < 2.0  # far below both `wait` and the 1 s polling fallback plus slack
    assert [e["subject"] for e in r.json()["events"]] == [contract["id"]]

    # Without events it holds for `wait` and then answers an empty page.
    head = await registry.head()
    started = time.monotonic()
    r = await registry.client.get("/v1/events", params={"after": head, "wait": 0.6}, headers=partner)
    assert 0.5 <= time.monotonic() - started < 5
    assert r.json()["events"] == [] and r.json()["next_after"] == head


async def test_long_poll_moves_past_non_public_events_at_once(registry):
    """A certification appends registration-book events after the contract event; a reader positioned on the
    contract event must be moved on (next_after) at once, not held for `wait` seconds."""
    point = await registry.point("6401")
    contract = await registry.submit(point)
    r = await registry.client.post(
        f"/v1/contracts/{contract['id']}/certify", json={"expert_review_ref": "Z"}, headers=point.headers
    )
    written_up_to = int(r.headers["TCR-Position"])
    certified = [e for e in await registry.feed() if e["subject"] == contract["id"]][-1]
    assert certified["position"] < written_up_to  # the book's events came after the contract's in the commit
    started = time.monotonic()
    r = await registry.client.get("/v1/events", params={"after": certified["position"], "wait": 10}, headers=ADMIN)
    assert time.monotonic() - started < 3
    assert r.json()["events"] == [] and r.json()["next_after"] == written_up_to


async def test_write_position_is_the_last_appended(registry):
    point = await registry.point("6401")
    r = await registry.client.post("/v1/contracts", json=contract_body(), headers=point.headers)
    assert int(r.headers["TCR-Position"]) == await registry.head()
    cid = r.json()["id"]
    for action, body in (
        ("certify", {"expert_review_ref": "Z"}),
        ("amend", {"reason": "r", "changes": {"title": "t"}}),
        ("revoke", {"reason": "r"}),
    ):
        r = await registry.client.post(f"/v1/contracts/{cid}/{action}", json=body, headers=point.headers)
        assert r.status_code == 200 and int(r.headers["TCR-Position"]) == await registry.head()


async def test_event_ids_survive_a_restart(tmp_path):
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    async with registry_in_process(url, tmp_path) as client:
        from tests.support.registry import RegistryEnv

        env = RegistryEnv(client, "sqlite", url)
        point = await env.point("6401")
        await env.certified(point)
        before = await env.feed()
    async with registry_in_process(url, tmp_path) as client:
        env = RegistryEnv(client, "sqlite", url)
        assert await env.feed() == before
        # ...and the restarted registry continues the point's book where it stopped.
        contract = await env.submit(point)
        r = await client.post(
            f"/v1/contracts/{contract['id']}/certify",
            json={"certified_at": "2025-03-11T10:00:00+08:00", "expert_review_ref": "Z"},
            headers=point.headers,
        )
        assert r.json()["registration_number"] == f"20256401{point.number}000002"


async def test_a_v1_certified_event_is_upcast(database_url, tmp_path):
    """Certified v1 (before the 2026 national rules) had no expert_review_ref; stored as v1, it loads as v2."""
    async with registry_in_process(database_url, tmp_path) as client:
        from tests.support.registry import RegistryEnv

        env = RegistryEnv(client, "db", database_url)
        point = await env.point("6401")
        contract = await env.submit(point)
        cid = uuid.UUID(contract["id"])
        app = env.runtime.app
        submitted = app.repository.get(cid)
        event = Contract.Certified(
            originator_id=cid,
            originator_version=2,
            timestamp=Contract.Certified.create_timestamp(),
            registration_number="2024640101000001",
            certified_at="2024-05-01T10:00:00+08:00",
            policy_year=2024,
            terms=submitted.terms_record,
            expert_review_ref="ignored",
        )
        v2 = app.mapper.to_stored_event(event)
        state = json.loads(v2.state)
        assert state.pop("class_version") == 2
        del state["expert_review_ref"]
        v1 = StoredEvent(
            originator_id=v2.originator_id, originator_version=2, topic=v2.topic, state=json.dumps(state).encode()
        )
        # In a thread: on SQLite a write on the loop's own thread could wait for a transaction that an async task
        # of the service (the index follower) holds open and can only finish once the loop runs again.
        await asyncio.to_thread(app.recorder.insert_events, [v1])

        loaded = app.repository.get(cid)
        assert loaded.status == "certified" and loaded.expert_review_ref is None and loaded.version == 2
        r = await client.get(f"/v1/contracts/{cid}", headers=point.headers)
        assert r.status_code == 200, r.text
        assert r.json()["expert_review_ref"] is None and r.json()["registration_number"] == "2024640101000001"
        [certified] = [e for e in await env.feed() if e["type"].endswith("certified.v1")]
        assert certified["data"]["expert_review_ref"] is None
        assert certified["data"]["registration_number"] == "2024640101000001"
        r = await client.get(f"/v1/contracts/{cid}/history", headers=point.headers)
        assert [e["type"] for e in r.json()["events"]][-1] == "tcr.registry.contract.certified.v1"
        # The upcast contract lives on: it can be revoked like any other.
        r = await client.post(f"/v1/contracts/{cid}/revoke", json={"reason": "r"}, headers=point.headers)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "revoked"
