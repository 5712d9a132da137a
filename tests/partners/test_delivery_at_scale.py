"""Many subscriptions delivering side by side (issue 13, webhooks): each still gets every event once and in position
order, the cursors and delivery rows of many subscriptions share transactions without one superseded subscription
spoiling the others' writes, and connections to a partner are kept alive (the client itself: test_delivery_client.py)."""

from __future__ import annotations

import asyncio
from collections import Counter

import uvicorn
from sqlalchemy import MetaData, select

from tcr_shared.language.events.envelope import FeedEvent, FeedPage
from tcr_shared.partners.client import verify_webhook
from tcr_shared.partners.webhooks import DeliveryWorker, WebhookSettings, webhook_tables
from tcr_shared.partners.webhooks.worker import utcnow
from tcr_shared.partners.webhooks.writes import GroupWriter
from tcr_shared.platform.database import Database
from tests.partners.conftest import append, feed_events, key, wait_until
from tests.partners.events import registry_event
from tests.partners.test_https_delivery import ListLog
from tests.support.asgi import read_body
from tests.support.processes import free_port

SUBSCRIPTIONS = 6


async def test_many_subscriptions_each_get_every_event_once_in_order_across_a_restart(
    http, start_publisher, make_receiver, database_url
):
    publisher = start_publisher(database_url=database_url if database_url.startswith("postgresql") else None)
    receivers, subs = [], []
    for _ in range(SUBSCRIPTIONS):
        port = free_port()
        response = await http.post(
            f"{publisher.url}/v1/subscriptions",
            json={"url": f"http://127.0.0.1:{port}/hook", "event_types": ["tcr.registry.contract.*"], "start": "0"},
            headers=key("acme"),
        )
        assert response.status_code == 201, response.text
        subs.append(response.json())
        receivers.append(make_receiver(subs[-1]["secret"], port=port).start())
    await append(http, publisher, [registry_event("certified") for _ in range(40)])
    first = await feed_events(http, publisher)

    async def cursors_at(position: int) -> bool:
        listed = (await http.get(f"{publisher.url}/v1/subscriptions", headers=key("acme"))).json()["subscriptions"]
        return len(listed) == SUBSCRIPTIONS and all(s["position"] == position for s in listed)

    await wait_until(lambda: cursors_at(first[-1]["position"]), timeout=60, what="every cursor at the head")
    for receiver in receivers:
        got = receiver.received()
        assert [r["webhook_id"] for r in got] == [e["id"] for e in first]  # once each, in position order
        assert len({r["client_port"] for r in got}) == 1  # one kept-alive connection carried them all

    # A restart (kill -9) after the cursors were written sends nothing twice, and the next events still arrive.
    publisher.kill()
    publisher = start_publisher(again=publisher)
    await append(http, publisher, [registry_event("revoked") for _ in range(10)])
    every = await feed_events(http, publisher)
    await wait_until(lambda: cursors_at(every[-1]["position"]), timeout=60, what="every cursor at the new head")
    for receiver in receivers:
        assert [r["webhook_id"] for r in receiver.received()] == [e["id"] for e in every]


async def _writer_and_subscriptions(tmp_path, count: int):
    engine = Database(f"sqlite:///{tmp_path / 'writes.db'}").async_engine()
    tables = webhook_tables(MetaData())
    now = utcnow()
    async with engine.begin() as conn:
        await conn.run_sync(tables.subscriptions.metadata.create_all)
        for i in range(count):
            await conn.execute(
                tables.subscriptions.insert().values(
                    id=f"sub_{i}",
                    owner="acme",
                    url="http://192.0.2.1/hook",
                    event_types=["*"],
                    regions=[],
                    secret="whsec_" + "A" * 44,
                    status="active",
                    position=0,
                    generation=0,
                    failed_attempts=0,
                    created_at=now,
                    updated_at=now,
                )
            )
    return engine, tables, GroupWriter(engine, tables, deliveries_kept=1000)


def _attempt(position: int) -> dict:
    return dict(
        webhook_id=f"evt-{position}",
        event_type="tcr.registry.contract.certified.v1",
        event_position=position,
        attempt=1,
        attempted_at=utcnow(),
        status_code=204,
        outcome="delivered",
        error=None,
        duration_ms=1.0,
        next_retry_at=None,
    )


async def test_writes_waiting_together_share_one_transaction_and_a_superseded_one_changes_nothing(tmp_path):
    engine, tables, writer = await _writer_and_subscriptions(tmp_path, 5)
    s, d = tables.subscriptions, tables.deliveries
    try:
        async with engine.begin() as conn:  # a replay of sub_3 happened meanwhile: its generation moved on
            await conn.execute(s.update().where(s.c.id == "sub_3").values(generation=1))
        stored = await asyncio.gather(
            *(
                writer.write(
                    f"sub_{i}", 0, {"position": 7, "failed_attempts": 0, "last_delivered_at": utcnow()}, _attempt(7)
                )
                for i in range(5)
            )
        )
        assert stored == [True, True, True, False, True]
        assert writer.commits == 1
        async with engine.connect() as conn:
            positions = dict((await conn.execute(select(s.c.id, s.c.position))).all())
            logged = sorted((await conn.execute(select(d.c.subscription_id))).scalars())
        assert positions == {"sub_0": 7, "sub_1": 7, "sub_2": 7, "sub_3": 0, "sub_4": 7}
        assert logged == ["sub_0", "sub_1", "sub_2", "sub_4"]

        # Writes with different columns (a filtered-out stretch, a failed attempt) share a transaction too.
        stored = await asyncio.gather(
            writer.write("sub_0", 0, {"position": 9}, None),
            writer.write(
                "sub_1", 0, {"failed_attempts": 1, "failing_since": utcnow()}, {**_attempt(8), "outcome": "failed"}
            ),
        )
        assert stored == [True, True] and writer.commits == 2
        async with engine.connect() as conn:
            rows = {r.id: r for r in (await conn.execute(select(s))).all()}
        assert rows["sub_0"].position == 9 and rows["sub_1"].position == 7 and rows["sub_1"].failed_attempts == 1
    finally:
        await writer.close()
        await engine.dispose()


class CountingLog(ListLog):
    """The publisher's log, counting the reads that returned events, by where they started."""

    def __init__(self, events: list[FeedEvent]) -> None:
        super().__init__(events)
        self.reads: Counter[int] = Counter()

    async def read(self, after: int, limit: int) -> FeedPage:
        page = await super().read(after, limit)
        if page.events:
            self.reads[after] += 1
        return page


async def test_subscriptions_on_the_same_stretch_read_each_page_of_the_log_once(tmp_path):
    """Five subscriptions from position 0, 250 events in pages of 100: every page is read once, for all five, and
    each subscription still gets every event in order (a real local receiver checks it)."""
    engine, tables, _ = await _writer_and_subscriptions(tmp_path, 0)
    secret = "whsec_" + "C" * 44
    received: dict[str, list[int]] = {}

    async def receiver(scope, receive, send):
        body = await read_body(receive)
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        event = verify_webhook(secret, body, headers)
        received.setdefault(scope["path"], []).append(event.position)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(receiver, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    serving = asyncio.create_task(server.serve())
    item = registry_event()
    events = [
        FeedEvent(
            id=f"evt-{i}",
            source="/tcr/registry",
            type=item["type"],
            time="2025-03-02T08:00:00+00:00",
            subject=item["subject"],
            position=i,
            data=item["data"],
        )
        for i in range(1, 251)
    ]
    now = utcnow()
    async with engine.begin() as conn:
        for i in range(5):
            await conn.execute(
                tables.subscriptions.insert().values(
                    id=f"sub_{i}",
                    owner="acme",
                    url=f"http://127.0.0.1:{port}/hook/{i}",
                    event_types=["*"],
                    regions=[],
                    secret=secret,
                    status="active",
                    position=0,
                    generation=0,
                    failed_attempts=0,
                    created_at=now,
                    updated_at=now,
                )
            )
    log = CountingLog(events)
    worker = DeliveryWorker(engine, tables, log, settings=WebhookSettings(batch=100))
    try:
        await wait_until(lambda: server.started, what="the receiver")
        worker.start()
        await wait_until(lambda: worker.delivered == 5 * 250, timeout=60, what="every delivery")
        assert {path: positions for path, positions in received.items()} == {
            f"/hook/{i}": list(range(1, 251)) for i in range(5)
        }
        assert log.reads == {0: 1, 100: 1, 200: 1}
    finally:
        await worker.stop()
        server.should_exit = True
        await serving
        await engine.dispose()
