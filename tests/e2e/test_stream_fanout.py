"""Many live streams at once over a real uvicorn registry: the streams share their reads of the log (one read per
commit, one encoding per page), and each still receives every public event after its start exactly once, in
order, with the same JSON the catch-up feed serves."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from tests.support.registry import ADMIN_KEY, auth, contract_body
from tests.support.sse import SseReader, until

pytestmark = pytest.mark.e2e
ADMIN = auth(ADMIN_KEY)
STREAMS = 24


async def _feed(client: httpx.AsyncClient, headers: dict, after: int) -> list[dict]:
    events = []
    while True:
        page = (await client.get("/v1/events", params={"after": after, "limit": 7}, headers=headers)).json()
        events += page["events"]
        if page["next_after"] == after:
            return events
        after = page["next_after"]


async def test_every_stream_gets_every_event_once_in_order(registry_process):
    async with httpx.AsyncClient(base_url=registry_process.url, timeout=30) as client:
        r = await client.post(
            "/v1/points", json={"number": "01", "name": "银川", "jurisdiction": "6401"}, headers=ADMIN
        )
        r = await client.post("/v1/api-keys", json={"role": "point", "point_id": r.json()["id"]}, headers=ADMIN)
        point = auth(r.json()["secret"])
        partner = auth((await client.post("/v1/api-keys", json={"role": "partner"}, headers=ADMIN)).json()["secret"])

        async def submit(i: int) -> str:
            body = contract_body(title=f"流 {i}", amount="900000.00", technology_amount="800000.00")
            r = await client.post("/v1/contracts", json=body, headers=point)
            assert r.status_code == 201, r.text
            return r.json()["id"]

        async def certify(contract_id: str) -> None:
            r = await client.post(f"/v1/contracts/{contract_id}/certify", json={}, headers=point)
            assert r.status_code == 200, r.text

        before = [await submit(i) for i in range(3)]
        history = await _feed(client, partner, 0)
        # Streams from the start, from the middle of the history and from its head, opened together.
        starts = [0, history[1]["position"], history[-1]["position"]]
        streams = [
            (after, SseReader(client, f"/v1/events/stream?after={after}", partner))
            for after in (starts[i % 3] for i in range(STREAMS))
        ]
        await until(lambda: all(s.status is not None for _, s in streams), what="the streams to open")
        assert {s.status for _, s in streams} == {200}

        # Writes while the streams are live: concurrent submissions, then certifications (more positions).
        new = await asyncio.gather(*(submit(i) for i in range(3, 15)))
        await asyncio.gather(*(certify(c) for c in [*before, *new][::2]))
        everything = await _feed(client, partner, 0)
        last = everything[-1]["position"]
        await until(
            lambda: all(s.events and int(s.events[-1]["id"]) >= last for _, s in streams),
            timeout=30,
            what="every stream to reach the last event",
        )
        for after, stream in streams:
            expected = [e for e in everything if e["position"] > after]
            assert [int(e["id"]) for e in stream.events] == [e["position"] for e in expected]
            assert [e["event"] for e in stream.events] == [e["type"] for e in expected]
            assert [json.loads(e["data"]) for e in stream.events] == expected
        for _, stream in streams:
            await stream.close()
