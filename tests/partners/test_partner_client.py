"""The partner client: webhook verification, following a feed from a saved position, and standing alone."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from tcr_shared.language.events.envelope import FeedEvent
from tcr_shared.partners.client import InvalidWebhook, PartnerClient, verify_webhook
from tcr_shared.partners.webhooks import encode_event, signed_headers
from tcr_shared.partners.webhooks.router import new_webhook_secret
from tests.partners.conftest import ADMIN_KEY, append, feed_events, wait_until
from tests.partners.events import registry_event

EVENT = FeedEvent(
    id="3f1d2c1e-0000-4000-8000-000000000001",
    source="/tcr/registry",
    type="tcr.registry.contract.certified.v1",
    time="2025-03-02T08:00:00+00:00",
    subject="c1",
    position=7,
    data=registry_event()["data"],
)


def test_a_genuine_delivery_verifies_and_yields_the_event():
    secret = new_webhook_secret()
    body = encode_event(EVENT)
    event = verify_webhook(secret, body.encode(), signed_headers(secret, EVENT.id, body))
    assert event == EVENT


@pytest.mark.parametrize(
    "tamper", ["other secret", "body", "webhook-id", "old", "future", "missing", "garbage", "not an event"]
)
def test_a_bad_signature_is_rejected_by_the_client_helper(tamper):
    secret = new_webhook_secret()
    body = encode_event(EVENT)
    headers = signed_headers(secret, EVENT.id, body)
    if tamper == "other secret":
        headers = signed_headers(new_webhook_secret(), EVENT.id, body)
    elif tamper == "body":
        body = body.replace('"position":7', '"position":8')
    elif tamper == "webhook-id":
        headers = signed_headers(secret, "another-id", body)
    elif tamper == "old":
        headers = signed_headers(secret, EVENT.id, body, datetime.now(UTC) - timedelta(minutes=6))
    elif tamper == "future":
        headers = signed_headers(secret, EVENT.id, body, datetime.now(UTC) + timedelta(minutes=6))
    elif tamper == "missing":
        del headers["webhook-signature"]
    elif tamper == "garbage":
        headers["webhook-signature"] = "v1 not-base64!"
    elif tamper == "not an event":
        body = json.dumps({"hello": "world"})
        headers = signed_headers(secret, EVENT.id, body)
    with pytest.raises(InvalidWebhook):
        verify_webhook(secret, body.encode(), headers)


async def test_the_receiver_refuses_a_forged_delivery_over_http(http, make_receiver):
    receiver = make_receiver(new_webhook_secret()).start()
    body = encode_event(EVENT)
    forged = signed_headers(new_webhook_secret(), EVENT.id, body)
    response = await http.post(receiver.url, content=body.encode(), headers=forged)
    assert response.status_code == 401
    assert receiver.received() == []


async def test_follows_from_a_saved_position_through_catch_up_and_live_stream(http, start_publisher):
    publisher = start_publisher()
    positions = await append(http, publisher, [registry_event() for _ in range(25)])
    client = PartnerClient(publisher.url, ADMIN_KEY, page_size=10)
    got: list[FeedEvent] = []

    async def consume():
        async for event in client.events(after=positions[4]):
            got.append(event)

    task = asyncio.create_task(consume())
    try:
        await wait_until(lambda: len(got) >= 20, what="catch-up")
        live = await append(http, publisher, [registry_event() for _ in range(5)])
        await wait_until(lambda: len(got) >= 25, what="live events over SSE")
    finally:
        task.cancel()
        await client.aclose()
    events = await feed_events(http, publisher)
    assert [e.position for e in got] == positions[5:] + live
    assert [e.id for e in got] == [e["id"] for e in events][5:]


async def test_the_client_rides_out_a_publisher_restart(http, start_publisher):
    publisher = start_publisher()
    await append(http, publisher, [registry_event() for _ in range(3)])
    client = PartnerClient(publisher.url, ADMIN_KEY)
    got: list[int] = []

    async def consume():
        async for event in client.events(after=0):
            got.append(event.position)

    task = asyncio.create_task(consume())
    try:
        await wait_until(lambda: len(got) == 3)
        publisher.stop()  # the stream breaks; the client retries with backoff
        await asyncio.sleep(0.5)
        restarted = start_publisher(again=publisher)
        await append(http, restarted, [registry_event() for _ in range(2)])
        await wait_until(lambda: len(got) == 5, timeout=30, what="events after the restart")
    finally:
        task.cancel()
        await client.aclose()
    assert got == [1, 2, 3, 4, 5]
