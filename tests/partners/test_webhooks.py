"""Signed webhooks end to end: a publisher process with the shared webhook router and worker, and partner
receivers that are real HTTP servers verifying signatures with the partner client."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

import pytest
import yaml

from tcr_shared.partners.asyncapi import DEFAULT_PATH
from tests.partners.conftest import ADMIN, FAST_WEBHOOKS, append, feed_events, key, wait_until
from tests.partners.events import registry_event
from tests.support.processes import free_port, start_service


async def subscribe(http, publisher, body: dict, who: str = "acme") -> dict:
    response = await http.post(f"{publisher.url}/v1/subscriptions", json=body, headers=key(who))
    assert response.status_code == 201, response.text
    sub = response.json()
    assert sub["secret"].startswith("whsec_")
    assert response.headers["location"] == f"/v1/subscriptions/{sub['id']}"
    return sub


async def test_receiver_down_and_back_gets_every_event_in_order(http, start_publisher, make_receiver, database_url):
    """On SQLite and on PostgreSQL (the webhook tables live in the publisher's own database)."""
    publisher = start_publisher(database_url=database_url if database_url.startswith("postgresql") else None)
    receiver_port = free_port()
    sub = await subscribe(
        http,
        publisher,
        {"url": f"http://127.0.0.1:{receiver_port}/hook", "event_types": ["tcr.registry.contract.*"], "start": "0"},
    )
    # The secret is shown once: reading the subscription again does not reveal it.
    again = (await http.get(f"{publisher.url}/v1/subscriptions/{sub['id']}", headers=key("acme"))).json()
    assert "secret" not in again and again["status"] == "active"

    await append(http, publisher, [registry_event("submitted") for _ in range(5)])  # receiver not up yet
    receiver = make_receiver(sub["secret"], port=receiver_port).start()
    await append(http, publisher, [registry_event("certified") for _ in range(5)])
    await wait_until(lambda: len(receiver.unique()) >= 10, what="first 10 events")

    receiver.stop()  # the partner goes down for a while
    await append(http, publisher, [registry_event("certified") for _ in range(15)])

    async def failing():
        body = (await http.get(f"{publisher.url}/v1/subscriptions/{sub['id']}/deliveries", headers=key("acme"))).json()
        failed = [d for d in body["deliveries"] if d["outcome"] == "failed" and d["position"] > 10]
        return len(failed) >= 3 and body["subscription"]["next_retry_at"] and failed

    failed = await wait_until(failing, what="failed attempts while the receiver is down")
    assert failed[0]["status_code"] is None and failed[0]["next_retry_at"] and failed[0]["error"]
    assert [d["attempt"] for d in failed[:3]] == sorted((d["attempt"] for d in failed[:3]), reverse=True)

    receiver.start()
    await append(http, publisher, [registry_event("revoked") for _ in range(5)])
    await wait_until(lambda: len(receiver.unique()) >= 30, timeout=30, what="all 30 events")

    events = await feed_events(http, publisher)
    assert len(events) == 30
    received = receiver.received()
    # In order: each event is sent only after the one before it was accepted (a resend repeats, never skips).
    positions = [r["position"] for r in received]
    assert positions == sorted(positions)
    unique = receiver.unique()
    assert [u["webhook_id"] for u in unique] == [e["id"] for e in events]
    assert [u["position"] for u in unique] == [e["position"] for e in events]
    assert len({u["webhook_id"] for u in unique}) == 30

    sub_now = (await http.get(f"{publisher.url}/v1/subscriptions/{sub['id']}", headers=key("acme"))).json()
    assert sub_now["position"] == events[-1]["position"] and sub_now["failed_attempts"] == 0


async def test_prefecture_and_county_filters(http, start_publisher, make_receiver):
    publisher = start_publisher()
    prefecture = await subscribe(
        http,
        publisher,
        {
            "url": "http://127.0.0.1:1/hook",
            "regions": ["6402"],
            "event_types": ["tcr.registry.contract.certified.v1"],
            "start": "now",
        },
    )
    county = await subscribe(http, publisher, {"url": "http://127.0.0.1:1/hook", "regions": ["640181"], "start": "now"})
    r1 = make_receiver(prefecture["secret"]).start()
    r2 = make_receiver(county["secret"]).start()
    for sub, receiver in ((prefecture, r1), (county, r2)):
        response = await http.patch(
            f"{publisher.url}/v1/subscriptions/{sub['id']}", json={"url": receiver.url}, headers=key("acme")
        )
        assert response.status_code == 200, response.text

    items = [
        registry_event("certified", "640104", "640181"),  # Yinchuan only
        registry_event("certified", "640205", "640104"),  # seller in Shizuishan (6402)
        registry_event("certified", "110108", "640221"),  # buyer in Pingluo (6402), seller in Beijing
        registry_event("submitted", "640205", "640181"),  # 6402, but not a certification
        registry_event("certified", "640302", "640381"),  # Wuzhong only
        registry_event("revoked", "640202", "640181"),  # 6402, but a revocation
    ]
    positions = await append(http, publisher, items)
    await wait_until(lambda: len(r1.unique()) >= 2 and len(r2.unique()) >= 3, what="filtered deliveries")
    marker = await append(http, publisher, [registry_event("certified", "640205", "640181")])
    await wait_until(
        lambda: marker[0] in [u["position"] for u in r1.unique()] and marker[0] in [u["position"] for u in r2.unique()],
        what="marker event",
    )
    assert [u["position"] for u in r1.unique()] == [positions[1], positions[2], marker[0]]
    assert [u["position"] for u in r2.unique()] == [positions[0], positions[3], positions[5], marker[0]]
    for entry in r1.unique():
        regions = {entry["data"]["terms"][role]["region"] for role in ("seller", "buyer")}
        assert any(r.startswith("6402") for r in regions)


async def test_slow_or_dead_partner_does_not_delay_others_or_registration(http, start_publisher, make_receiver):
    publisher = start_publisher(TCR_WEBHOOK_TIMEOUT="0.5")
    slow = await subscribe(http, publisher, {"url": "http://127.0.0.1:1/hook", "start": "0"}, who="slow")
    dead = await subscribe(http, publisher, {"url": "http://127.0.0.1:1/hook", "start": "0"}, who="dead")
    fast = await subscribe(http, publisher, {"url": "http://127.0.0.1:1/hook", "start": "0"}, who="fast")
    slow_receiver = make_receiver(slow["secret"], RECEIVER_DELAY="5").start()
    fast_receiver = make_receiver(fast["secret"]).start()
    await http.patch(
        f"{publisher.url}/v1/subscriptions/{slow['id']}", json={"url": slow_receiver.url}, headers=key("slow")
    )
    await http.patch(
        f"{publisher.url}/v1/subscriptions/{fast['id']}", json={"url": fast_receiver.url}, headers=key("fast")
    )
    assert dead["url"].endswith(":1/hook")  # nothing listens there

    started = time.monotonic()
    for _ in range(10):
        t0 = time.monotonic()
        await append(http, publisher, [registry_event("certified") for _ in range(3)])
        assert time.monotonic() - t0 < 2.0  # appending never waits for a partner
    # Were the partners served one after the other, the slow one's 0.5 s timeouts would hold up the fast one.
    await wait_until(lambda: len(fast_receiver.unique()) >= 30, timeout=12, what="fast partner's 30 events")
    assert time.monotonic() - started < 12
    assert slow_receiver.unique() == []  # every request to it timed out (and is being retried)

    async def slow_attempts():
        return (
            await http.get(f"{publisher.url}/v1/subscriptions/{slow['id']}/deliveries", headers=key("slow"))
        ).json()["deliveries"]

    deliveries = await wait_until(slow_attempts, what="attempts on the slow partner")
    assert all(d["outcome"] == "failed" and d["error"].startswith("timeout") for d in deliveries)


async def test_failing_endpoint_backs_off_pauses_with_reason_and_resumes_losing_nothing(
    http, start_publisher, make_receiver
):
    publisher = start_publisher(
        TCR_WEBHOOK_RETRY_INITIAL="0.2",
        TCR_WEBHOOK_RETRY_MAX="10",
        TCR_WEBHOOK_RETRY_WINDOW="1.6",
        TCR_WEBHOOK_RETRY_JITTER="0.2",
    )
    sub = await subscribe(http, publisher, {"url": "http://127.0.0.1:1/hook", "start": "0"})
    receiver = make_receiver(sub["secret"], RECEIVER_STATUS="503").start()
    await http.patch(f"{publisher.url}/v1/subscriptions/{sub['id']}", json={"url": receiver.url}, headers=key("acme"))
    positions = await append(http, publisher, [registry_event("certified") for _ in range(3)])

    async def paused():
        body = (await http.get(f"{publisher.url}/v1/subscriptions/{sub['id']}", headers=key("acme"))).json()
        return body if body["status"] == "paused" else None

    state = await wait_until(paused, timeout=15, what="the subscription to pause")
    assert "failed attempts" in state["paused_reason"] and "HTTP 503" in state["paused_reason"]
    assert state["position"] < positions[0]  # the cursor is still before the failing event
    log = (await http.get(f"{publisher.url}/v1/subscriptions/{sub['id']}/deliveries", headers=key("acme"))).json()[
        "deliveries"
    ][::-1]
    assert {d["position"] for d in log} == {positions[0]}
    assert all(d["status_code"] == 503 for d in log) and log[-1]["outcome"] == "paused"
    times = [datetime.fromisoformat(d["attempted_at"]) for d in log]
    # the wait each failure scheduled, from the end of its attempt to the retry
    scheduled = [
        (datetime.fromisoformat(d["next_retry_at"]) - t).total_seconds() - d["duration_ms"] / 1000
        for d, t in zip(log, times)
        if d["next_retry_at"]
    ]
    gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:])]
    assert len(scheduled) >= 3 and len(gaps) == len(scheduled)
    assert 0.15 <= scheduled[0] <= 0.35, scheduled
    assert all(later > 1.25 * earlier for earlier, later in zip(scheduled, scheduled[1:])), scheduled  # doubling, ±20 %
    assert all(gap >= delay for gap, delay in zip(gaps, scheduled)), (gaps, scheduled)  # waits honoured

    receiver.stop()
    receiver.start(RECEIVER_STATUS="204")
    await asyncio.sleep(0.5)
    assert receiver.unique() == []  # paused means paused
    resumed = await http.patch(
        f"{publisher.url}/v1/subscriptions/{sub['id']}", json={"status": "active"}, headers=key("acme")
    )
    assert resumed.status_code == 200 and resumed.json()["paused_reason"] is None
    await wait_until(lambda: len(receiver.unique()) >= 3, what="events after resume")
    assert [u["position"] for u in receiver.unique()] == positions


async def test_replay_from_a_position_delivers_again_with_the_same_ids(http, start_publisher, make_receiver):
    publisher = start_publisher()
    sub = await subscribe(http, publisher, {"url": "http://127.0.0.1:1/hook", "start": "0"})
    receiver = make_receiver(sub["secret"]).start()
    await http.patch(f"{publisher.url}/v1/subscriptions/{sub['id']}", json={"url": receiver.url}, headers=key("acme"))
    positions = await append(http, publisher, [registry_event("certified") for _ in range(5)])
    await wait_until(lambda: len(receiver.received()) >= 5)
    first = receiver.received()

    response = await http.post(
        f"{publisher.url}/v1/subscriptions/{sub['id']}/replay", params={"from": positions[2]}, headers=key("acme")
    )
    assert response.status_code == 202, response.text
    assert response.json()["position"] == positions[1]
    await wait_until(lambda: len(receiver.received()) >= 8, what="replayed events")
    await asyncio.sleep(0.3)
    again = receiver.received()[5:]
    assert [a["position"] for a in again] == positions[2:]
    assert [a["webhook_id"] for a in again] == [f["webhook_id"] for f in first[2:]]

    metrics = (await http.get(f"{publisher.url}/metrics")).text
    assert 'tcr_webhook_attempts_total{outcome="delivered"} 8.0' in metrics
    assert "tcr_webhook_subscriptions_running 1.0" in metrics

    bad = await http.post(
        f"{publisher.url}/v1/subscriptions/{sub['id']}/replay", params={"from": "ten"}, headers=key("acme")
    )
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
    beyond = await http.post(
        f"{publisher.url}/v1/subscriptions/{sub['id']}/replay", params={"from": 10_000}, headers=key("acme")
    )
    assert beyond.status_code == 422


async def test_partners_see_only_their_own_subscriptions_and_delete_stops_delivery(
    http, start_publisher, make_receiver
):
    publisher = start_publisher()
    sub = await subscribe(http, publisher, {"url": "http://127.0.0.1:1/hook", "start": "now"}, who="alpha")
    receiver = make_receiver(sub["secret"]).start()
    await http.patch(f"{publisher.url}/v1/subscriptions/{sub['id']}", json={"url": receiver.url}, headers=key("alpha"))
    other = await subscribe(http, publisher, {"url": "http://127.0.0.1:1/hook"}, who="beta")

    for method in ("GET", "PATCH", "DELETE"):
        response = await http.request(
            method,
            f"{publisher.url}/v1/subscriptions/{sub['id']}",
            headers=key("beta"),
            json={} if method == "PATCH" else None,
        )
        assert response.status_code == 404, (method, response.text)
    assert [
        s["id"]
        for s in (await http.get(f"{publisher.url}/v1/subscriptions", headers=key("beta"))).json()["subscriptions"]
    ] == [other["id"]]
    admin_view = (await http.get(f"{publisher.url}/v1/subscriptions", headers=ADMIN)).json()["subscriptions"]
    assert {s["id"] for s in admin_view} == {sub["id"], other["id"]}
    assert (await http.get(f"{publisher.url}/v1/subscriptions", headers=key("x", "analyst"))).status_code == 403
    assert (await http.get(f"{publisher.url}/v1/subscriptions")).status_code == 401

    await append(http, publisher, [registry_event("certified")])
    await wait_until(lambda: len(receiver.unique()) == 1)
    assert (await http.delete(f"{publisher.url}/v1/subscriptions/{sub['id']}", headers=key("alpha"))).status_code == 204
    assert (await http.get(f"{publisher.url}/v1/subscriptions/{sub['id']}", headers=key("alpha"))).status_code == 404
    await append(http, publisher, [registry_event("certified")])
    await asyncio.sleep(1.0)
    assert len(receiver.received()) == 1


async def test_individuals_personal_data_never_leaves_in_a_webhook(http, start_publisher, make_receiver):
    publisher = start_publisher()
    sub = await subscribe(http, publisher, {"url": "http://127.0.0.1:1/hook", "start": "0"})
    receiver = make_receiver(sub["secret"]).start()
    await http.patch(f"{publisher.url}/v1/subscriptions/{sub['id']}", json={"url": receiver.url}, headers=key("acme"))
    # An upstream mistake: the publisher's event carries an individual's name and identity number.
    await append(
        http,
        publisher,
        [
            registry_event(
                "certified", buyer_individual=True, extra_personal={"name": "张三", "id_number": "640104199001011237"}
            )
        ],
    )
    await wait_until(lambda: receiver.unique())
    buyer = receiver.unique()[0]["data"]["terms"]["buyer"]
    assert buyer["kind"] == "individual" and buyer["name"] is None and "id_number" not in buyer
    raw = receiver.log_file.read_text()
    assert "张三" not in raw and "640104199001011237" not in raw


@pytest.mark.e2e
async def test_certifications_in_the_real_registry_reach_a_partner(http, tmp_path, artifacts_dir, make_receiver):
    """The registry with the webhook router and worker mounted: a partner with a registry-issued key subscribes
    to certifications in one prefecture and receives exactly those, signed, in order."""
    from tests.partners.registry import REGISTRY_WITH_WEBHOOKS, RegistryClient, start_registry

    registry = start_registry(tmp_path, artifacts_dir / "partners", app=REGISTRY_WITH_WEBHOOKS, **FAST_WEBHOOKS)
    try:
        client = RegistryClient(http, registry)
        await client.setup_point()
        partner = {"Authorization": f"Bearer {await client.partner_key()}"}
        receiver_port = free_port()
        response = await http.post(
            f"{registry.url}/v1/subscriptions",
            headers=partner,
            json={
                "url": f"http://127.0.0.1:{receiver_port}/hook",
                "event_types": ["tcr.registry.contract.certified.*"],
                "regions": ["6405"],
                "start": "0",
            },
        )
        assert response.status_code == 201, response.text
        receiver = make_receiver(response.json()["secret"], port=receiver_port).start()
        wanted = []
        for seller in ("640502", "640104", "640521", "640205", "640522"):
            contract = await client.submit(seller_region=seller)
            await client.certify(contract)
            if seller.startswith("6405"):
                wanted.append(contract)
        await client.every_kind_of_event()
        await wait_until(lambda: len(receiver.unique()) >= 3, what="the three Zhongwei certifications")
        await asyncio.sleep(0.5)
        unique = receiver.unique()
        assert [u["data"]["contract_id"] for u in unique] == wanted
        assert {u["type"] for u in unique} == {"tcr.registry.contract.certified.v1"}
        feed = {e["id"]: e["position"] for e in await feed_events(http, registry)}
        assert [feed[u["webhook_id"]] for u in unique] == [u["position"] for u in unique]
    finally:
        registry.kill()


@pytest.mark.e2e
async def test_awards_of_the_real_subsidy_service_reach_a_partner_filtered_by_region(
    http, tmp_path, artifacts_dir, make_receiver
):
    from tests.partners.registry import RegistryClient, start_registry
    from tests.partners.test_asyncapi import published_schemas

    registry = start_registry(tmp_path, artifacts_dir / "partners")
    subsidy = None
    try:
        subsidy = start_service(
            "subsidy",
            "tests.partners.subsidy_webhooks_app:create_app",
            {
                "TCR_SUBSIDY_DATABASE_URL": f"sqlite:///{tmp_path / 'subsidy.db'}",
                "TCR_DATA_DIR": str(tmp_path),
                "TCR_ADMIN_KEY": ADMIN["Authorization"].split()[1],
                "TCR_REGISTRY_URL": registry.url,
                **FAST_WEBHOOKS,
            },
            artifacts_dir / "partners",
        )
        client = RegistryClient(http, registry)
        await client.setup_point()
        partner = {"Authorization": f"Bearer {await client.partner_key()}"}
        port = free_port()
        response = await http.post(
            f"{subsidy.url}/v1/subscriptions",
            headers=partner,
            json={
                "url": f"http://127.0.0.1:{port}/hook",
                "event_types": ["tcr.subsidy.award.*"],
                "regions": ["6401"],
                "start": "0",
            },
        )
        assert response.status_code == 201, response.text
        receiver = make_receiver(response.json()["secret"], port=port).start()
        bad = await http.post(
            f"{subsidy.url}/v1/subscriptions",
            headers=partner,
            json={"url": "http://127.0.0.1:9/hook", "event_types": ["tcr.registry.contract.*"]},
        )
        assert bad.status_code == 422  # the subsidy service publishes awards only

        yinchuan = await client.submit(seller_region="640104", buyer_region="640181")
        await client.certify(yinchuan)
        elsewhere = await client.submit(seller_region="640205", buyer_region="640502")
        await client.certify(elsewhere)
        marker = await client.submit(seller_region="640502", buyer_region="640106")
        await client.certify(marker)

        await wait_until(
            lambda: any(u["data"]["contract_id"] == marker for u in receiver.unique()),
            timeout=30,
            what="the award for the last contract",
        )
        unique = receiver.unique()
        assert {u["data"]["contract_id"] for u in unique} == {yinchuan, marker}
        assert all(u["data"]["beneficiary_region"].startswith("6401") for u in unique)
        assert [u["position"] for u in unique] == sorted(u["position"] for u in unique)
        validators = published_schemas(yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8")))
        feed = {e["id"]: e for e in await feed_events(http, subsidy)}
        for event in feed.values():
            validators[event["type"]].validate(event)  # real award events match the published schemas
        assert {u["webhook_id"] for u in unique} <= set(feed)
    finally:
        registry.kill()
        if subsidy:
            subsidy.kill()
