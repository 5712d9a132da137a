"""The NATS JetStream relay against the real NATS server: order, ids, subjects, personal data, and kill -9."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid

import nats
import pytest
from nats.js.errors import NotFoundError

from tests.partners.conftest import ADMIN_KEY, append, feed_events, wait_until
from tests.partners.events import registry_event, subsidy_event
from tests.support.processes import ROOT


@pytest.fixture
async def jetstream(nats_server):
    nc = await nats.connect(nats_server, connect_timeout=3)
    js = nc.jetstream()
    created: list[str] = []
    yield js, created
    for name in created:
        try:
            await js.delete_stream(name)
        except NotFoundError:
            pass
    await nc.close()


class Relay:
    def __init__(self, env: dict[str, str], log_path) -> None:
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> Relay:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tcr_relay"],
                cwd=ROOT,
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=20)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def start_relay(tmp_path, nats_server):
    relays: list[Relay] = []

    def start(**env: str) -> Relay:
        relay = Relay({"TCR_NATS_URL": nats_server, "TCR_FEED_KEY": ADMIN_KEY, **env}, tmp_path / "relay.log")
        relays.append(relay.start())
        return relay

    yield start
    for relay in relays:
        relay.kill(signal.SIGTERM)


async def stream_messages(js, stream: str) -> list:
    info = await js.stream_info(stream)
    messages = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        messages.append(await js.get_msg(stream, seq))
    return messages


async def count(js, stream: str) -> int:
    try:
        return (await js.stream_info(stream)).state.messages
    except NotFoundError:
        return 0


async def test_relay_killed_mid_stream_resumes_with_no_duplicate_and_no_gap(
    http, start_publisher, start_relay, jetstream, tmp_path
):
    js, created = jetstream
    tag = uuid.uuid4().hex[:8]
    stream, prefix = f"TCRTEST_{tag}", f"t{tag}"
    created.append(stream)
    registry = start_publisher("registry")
    subsidy = start_publisher("subsidy")
    await append(
        http,
        registry,
        [registry_event("submitted") for _ in range(30)]
        + [
            registry_event(
                "certified", buyer_individual=True, extra_personal={"name": "张三", "id_number": "640104199001011237"}
            )
        ],
    )
    await append(http, subsidy, [subsidy_event() for _ in range(10)])
    env = {
        "TCR_NATS_STREAM": stream,
        "TCR_NATS_SUBJECT_PREFIX": prefix,
        "TCR_REGISTRY_URL": registry.url,
        "TCR_SUBSIDY_URL": subsidy.url,
        # a tiny de-duplication window, so that only the relay's own resume logic can prevent duplicates
        "TCR_NATS_DUPLICATE_WINDOW": "0.2",
    }
    relay = start_relay(**env)

    async def produce():
        for i in range(80):
            await append(http, registry, [registry_event("certified") for _ in range(3)])
            if i % 4 == 0:
                await append(http, subsidy, [subsidy_event()])
            await asyncio.sleep(0.02)

    producer = asyncio.create_task(produce())
    await wait_until(lambda: count(js, stream), what="the relay's first messages")
    await wait_until(lambda: _at_least(js, stream, 120), what="120 messages in the stream")
    relay.kill()  # kill -9, mid-stream: the producer is still appending
    at_kill = await count(js, stream)
    await producer
    total = len(await feed_events(http, registry)) + len(await feed_events(http, subsidy))
    assert at_kill < total
    await asyncio.sleep(0.5)  # longer than the de-duplication window
    start_relay(**env)
    await wait_until(lambda: _at_least(js, stream, total), timeout=30, what=f"all {total} events in the stream")
    await asyncio.sleep(1.0)
    assert await count(js, stream) == total  # nothing published twice

    messages = await stream_messages(js, stream)
    for source, publisher in (("registry", registry), ("subsidy", subsidy)):
        events = await feed_events(http, publisher)
        mine = [m for m in messages if m.headers["Tcr-Source"] == source]
        assert [int(m.headers["Tcr-Position"]) for m in mine] == [e["position"] for e in events]
        assert [m.headers["Nats-Msg-Id"] for m in mine] == [e["id"] for e in events]
        assert [m.subject for m in mine] == [f"{prefix}.{e['type'].removeprefix('tcr.')}" for e in events]
        assert [json.loads(m.data)["id"] for m in mine] == [e["id"] for e in events]
    assert "resuming after position 0" not in relay.log().split("resuming after")[-1]

    # Partners consume with their own consumers, filtered by subject.
    info = await js.stream_info(stream)
    assert sorted(info.config.subjects) == [f"{prefix}.registry.contract.>", f"{prefix}.subsidy.award.>"]
    consumer = await js.pull_subscribe(f"{prefix}.registry.contract.submitted.>", stream=stream)
    submitted = await consumer.fetch(100, timeout=1)
    assert len(submitted) == 30 and {m.subject for m in submitted} == {f"{prefix}.registry.contract.submitted.v1"}
    award = await js.get_last_msg(stream, f"{prefix}.subsidy.award.decided.v1")
    assert json.loads(award.data)["type"] == "tcr.subsidy.award.decided.v1"

    personal = json.loads(next(m.data for m in messages if b"individual" in m.data))
    assert personal["data"]["terms"]["buyer"]["name"] is None
    assert "id_number" not in personal["data"]["terms"]["buyer"]
    assert not any("张三".encode() in m.data or b"640104199001011237" in m.data for m in messages)


async def _at_least(js, stream: str, n: int) -> bool:
    return await count(js, stream) >= n


@pytest.mark.e2e
async def test_relay_publishes_the_real_registry_feed(http, start_relay, jetstream, tmp_path, artifacts_dir):
    from tests.partners.registry import RegistryClient, start_registry

    js, created = jetstream
    tag = uuid.uuid4().hex[:8]
    stream, prefix = f"TCRTEST_{tag}", f"t{tag}"
    created.append(stream)
    registry = start_registry(tmp_path, artifacts_dir / "partners")
    try:
        client = RegistryClient(http, registry)
        await client.setup_point()
        await client.every_kind_of_event()
        start_relay(
            TCR_NATS_STREAM=stream,
            TCR_NATS_SUBJECT_PREFIX=prefix,
            TCR_REGISTRY_URL=registry.url,
            TCR_RELAY_SOURCES="registry",
            TCR_FEED_KEY=await client.partner_key(),
        )
        events = await feed_events(http, registry)
        await wait_until(lambda: _at_least(js, stream, len(events)), what="the registry's events")
        contract = await client.submit(seller_region="640522")
        position = await client.certify(contract)  # TCR-Position of the certification
        subject = f"{prefix}.registry.contract.certified.v1"
        message = await wait_until(lambda: _last(js, stream, subject, contract), what="the live certification")
        assert int(message.headers["Tcr-Position"]) <= position  # the write's TCR-Position covers its event
        body = json.loads(message.data)
        assert body["subject"] == contract and body["data"]["terms"]["seller"]["region"] == "640522"
        messages = await stream_messages(js, stream)
        assert [m.headers["Nats-Msg-Id"] for m in messages] == [e["id"] for e in await feed_events(http, registry)]
    finally:
        registry.kill()


async def _last(js, stream: str, subject: str, contract: str):
    try:
        message = await js.get_last_msg(stream, subject)
    except NotFoundError:
        return None
    return message if json.loads(message.data)["subject"] == contract else None
