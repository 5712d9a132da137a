"""The registry as a real uvicorn process, over HTTP: the SSE stream (live events, `id:` = position, resume
with Last-Event-ID with nothing skipped or repeated, heartbeats), operations endpoints, JSON logs with a
request id, a clean stop on SIGTERM, and demo mode."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections import Counter

import httpx
import pytest

from tests.support.processes import start_service
from tests.support.registry import ADMIN_KEY, REGISTRY_APP, auth, contract_body, party
from tests.support.sse import SseReader
from tests.support.sse import until as _until

pytestmark = pytest.mark.e2e
ADMIN = auth(ADMIN_KEY)


async def test_registry_over_http(registry_process):
    service = registry_process
    async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
        assert (await client.get("/healthz")).json()["status"] == "ok"
        assert (await client.get("/readyz")).status_code == 200
        r = await client.post(
            "/v1/points", json={"number": "01", "name": "银川", "jurisdiction": "6401"}, headers=ADMIN
        )
        point_id = r.json()["id"]
        r = await client.post("/v1/api-keys", json={"role": "point", "point_id": point_id}, headers=ADMIN)
        point = auth(r.json()["secret"])
        partner = auth((await client.post("/v1/api-keys", json={"role": "partner"}, headers=ADMIN)).json()["secret"])

        # --- the SSE stream: live events, id = position, heartbeats ---
        stream = SseReader(client, "/v1/events/stream", partner)
        await _until(lambda: stream.status is not None, what="the stream to open")
        assert stream.status == 200 and stream.content_type.startswith("text/event-stream")
        await _until(
            lambda: any(line.startswith(":") for line in stream.lines), timeout=5, what="a heartbeat on an idle stream"
        )
        ids = []
        r = await client.post("/v1/contracts", json=contract_body(), headers={**point, "X-Request-ID": "e2e-submit-1"})
        assert r.status_code == 201 and r.headers["X-Request-ID"] == "e2e-submit-1"
        ids.append(r.json()["id"])
        await _until(lambda: len(stream.events) == 1, what="the first event to arrive live")
        r = await client.post(f"/v1/contracts/{ids[0]}/certify", json={"expert_review_ref": "Z"}, headers=point)
        assert r.status_code == 200
        for _ in range(3):
            r = await client.post("/v1/contracts", json=contract_body(), headers=point)
            ids.append(r.json()["id"])
        await _until(lambda: len(stream.events) == 5, what="five live events")
        for event in stream.events:
            body = json.loads(event["data"])
            assert event["id"] == str(body["position"]) and event["event"] == body["type"]
        last_id = stream.events[2]["id"]
        await stream.close()

        # --- resume with Last-Event-ID: nothing skipped, nothing repeated ---
        for _ in range(2):
            r = await client.post("/v1/contracts", json=contract_body(), headers=point)
            assert r.status_code == 201
        feed = (await client.get("/v1/events", params={"limit": 1000}, headers=partner)).json()["events"]
        assert len(feed) == 7
        resumed = SseReader(client, "/v1/events/stream", {**partner, "Last-Event-ID": last_id})
        await _until(lambda: len(resumed.events) >= 4, what="the resumed stream to catch up")
        r = await client.post("/v1/contracts", json=contract_body(), headers=point)  # and it stays live
        await _until(lambda: len(resumed.events) >= 5, what="a live event after resuming")
        expected = [str(e["position"]) for e in feed if e["position"] > int(last_id)] + [r.headers["TCR-Position"]]
        assert [e["id"] for e in resumed.events] == expected
        assert [json.loads(e["data"])["id"] for e in resumed.events[:4]] == [e["id"] for e in feed[3:]]
        await resumed.close()
        # ?after= resumes the same way; a bad Last-Event-ID is a 400 problem.
        from_after = SseReader(client, f"/v1/events/stream?after={feed[5]['position']}", partner)
        await _until(lambda: len(from_after.events) >= 2, what="a stream resumed with ?after=")
        assert [json.loads(e["data"])["id"] for e in from_after.events[:1]] == [feed[6]["id"]]
        await from_after.close()
        r = await client.get("/v1/events/stream", headers={**partner, "Last-Event-ID": "abc"})
        assert r.status_code == 400 and r.headers["content-type"].startswith("application/problem+json")
        assert (await client.get("/v1/events/stream")).status_code == 401

        # --- metrics ---
        text = (await client.get("/metrics")).text
        appended = [line for line in text.splitlines() if line.startswith("tcr_registry_events_appended_total ")]
        assert appended and float(appended[0].split()[1]) >= 9  # 8 contract events + registration-book events
        assert (
            'tcr_http_requests_total{method="POST",route="/v1/contracts",service="registry",status="201"} 7.0' in text
        )
        assert "tcr_http_request_seconds_bucket" in text

        # A stream open during shutdown must not stop the process from exiting.
        lingering = SseReader(client, "/v1/events/stream", partner)
        await _until(lambda: len(lingering.events) >= 8, what="the lingering stream to catch up")

        # --- SIGTERM: a clean stop ---
        service.process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(service.process.wait, 20)
        await _until(lambda: lingering._task.done(), timeout=5, what="the open stream to end")
        assert lingering.clean_end, "the SSE response was cut off instead of ended at shutdown"
    # uvicorn re-raises the captured SIGTERM after its graceful shutdown, so the exit status is -SIGTERM; the
    # lifespan's last words prove the shutdown ran to the end (writer drained, store closed).
    assert code in (0, -signal.SIGTERM), service.log()[-3000:]

    # --- JSON log lines with the request id ---
    records = []
    for line in service.log().splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
    access = [r for r in records if r.get("request_id") == "e2e-submit-1"]
    assert access and access[0]["path"] == "/v1/contracts" and access[0]["status"] == 201
    assert access[0]["method"] == "POST" and "duration_ms" in access[0] and "time" in access[0]
    assert all(r.get("request_id") for r in records if r.get("message") == "request")
    assert not [r for r in records if r.get("level") in ("error", "critical")], records
    assert "Traceback" not in service.log()
    assert any(r.get("message") == "registry stopped" for r in records), records[-3:]
    assert "ASGI callable returned without completing response" not in service.log()


async def test_demo_mode(tmp_path, artifacts_dir):
    env = {
        "TCR_DEMO": "1",
        "TCR_ADMIN_KEY": ADMIN_KEY,
        "TCR_DATA_DIR": str(tmp_path / "var"),
        "TCR_REGISTRY_DATABASE_URL": "",
    }
    service = start_service("registry-demo", REGISTRY_APP, env, artifacts_dir / "e2e-logs", timeout=120)
    try:
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
            partner = auth("tcr_demo_partner")
            feed, after = [], 0
            while True:
                page = (await client.get("/v1/events", params={"after": after, "limit": 1000}, headers=partner)).json()
                feed += page["events"]
                if page["next_after"] == after:
                    break
                after = page["next_after"]
            submitted = [e for e in feed if e["type"].endswith("submitted.v1")]
            assert len(submitted) == 400
            regions = Counter()
            for e in submitted:
                for role in ("seller", "buyer"):
                    regions[e["data"]["terms"][role]["region"]] += 1
            r = await client.get("/v1/regions")
            counties = {c["code"] for c in r.json()["regions"] if c["level"] == "county"}
            assert counties <= set(regions), f"counties without a contract: {counties - set(regions)}"
            years = {e["data"]["policy_year"] for e in feed if e["type"].endswith("certified.v1")}
            assert len(years) >= 4, years
            kinds = Counter(e["type"].split(".")[3] for e in feed)
            assert {"submitted", "certified", "rejected", "withdrawn", "amended", "revoked"} <= set(kinds), kinds

            # The demo keys work: analyst lists (once the index caught up), each point registers in its area.
            analyst = auth("tcr_demo_analyst")

            async def listed():
                seen, token = 0, None
                while True:
                    params = {"limit": 500, **({"page_token": token} if token else {})}
                    page = (await client.get("/v1/contracts", params=params, headers=analyst)).json()
                    seen += len(page["contracts"])
                    token = page["next_page_token"]
                    if not token:
                        return seen

            deadline = time.monotonic() + 30
            while await listed() < 400:
                assert time.monotonic() < deadline, "the contract index did not catch up with the demo data"
                await asyncio.sleep(0.1)
            for jurisdiction, county in (
                ("6401", "640104"),
                ("6402", "640205"),
                ("6403", "640302"),
                ("6404", "640402"),
                ("6405", "640502"),
                ("6400", "640522"),
            ):
                key = auth(f"tcr_demo_point_{jurisdiction}")
                who = (await client.get("/v1/whoami", headers=key)).json()
                assert who["role"] == "point" and who["jurisdiction"] == jurisdiction
                r = await client.post(
                    "/v1/contracts", json=contract_body(seller=party("enterprise", county)), headers=key
                )
                assert r.status_code == 201, r.text
            head = page["head"]
        service.stop()
        # Started again on the same data, it does not load the demo a second time.
        service = start_service("registry-demo", REGISTRY_APP, env, artifacts_dir / "e2e-logs", timeout=120)
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
            r = await client.get("/v1/events", params={"after": 0, "limit": 1}, headers=auth("tcr_demo_partner"))
            assert r.json()["head"] > head
            r = await client.get("/v1/events", params={"after": r.json()["head"]}, headers=auth("tcr_demo_partner"))
            assert r.json()["events"] == []
    finally:
        service.kill()
