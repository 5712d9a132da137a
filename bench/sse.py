"""Benchmark: the registry's live stream, `GET /v1/events/stream`, 200 concurrent clients, PostgreSQL.

A real uvicorn registry on PostgreSQL; the clients open their streams after the current head, then the writer
side registers contracts (`POST /v1/contracts`) at a steady rate. For each event and each client the latency is
the time the client read the event minus the time the writer had the commit acknowledged (the answer to its
POST: the commit is done by then; an event a client reads before the writer's answer counts as negative). Each
client must receive every public event after its start exactly once and in order (checked against the feed read
page by page afterwards). The baseline, in the same run: the same measurement with one client.
Prints the rows and writes bench-results/sse.json; asserts nothing.
Run: make bench, or python bench/sse.py (BENCH_SSE_CLIENTS, BENCH_SSE_RATE contracts/s, BENCH_SSE_SECONDS).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
import uvloop

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from results import Run, figure  # noqa: E402

from tests.support import postgres  # noqa: E402
from tests.support.processes import start_service  # noqa: E402
from tests.support.registry import ADMIN_KEY, REGISTRY_APP, contract_body  # noqa: E402

CLIENTS = int(os.environ.get("BENCH_SSE_CLIENTS", 200))
RATE = float(os.environ.get("BENCH_SSE_RATE", 20))  # contracts a second
SECONDS = float(os.environ.get("BENCH_SSE_SECONDS", 15))
BASELINE_SECONDS = min(SECONDS, 5)
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


@dataclass
class StreamClient:
    """A minimal SSE client on a raw connection (chunked HTTP/1.1): the figure is the server's, so the client
    does as little as possible per event: it notes each event's id and the time it was read."""

    host: str
    port: int
    key: str
    after: int
    received: list[tuple[int, float]] = field(default_factory=list)
    opened: asyncio.Event = field(default_factory=asyncio.Event)
    error: str | None = None

    async def run(self) -> None:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            writer.write(
                f"GET /v1/events/stream?after={self.after} HTTP/1.1\r\nHost: {self.host}\r\n"
                f"Authorization: Bearer {self.key}\r\nAccept: text/event-stream\r\n\r\n".encode()
            )
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                self.error = head.split(b"\r\n", 1)[0].decode()
                return
            self.opened.set()
            text = b""
            while True:
                size = int((await reader.readline()).strip(), 16)
                if size == 0:
                    return
                chunk = await reader.readexactly(size + 2)
                now = time.perf_counter()
                text += chunk[:-2]
                *events, text = text.replace(b"\r\n", b"\n").split(b"\n\n")
                for event in events:
                    for line in event.split(b"\n"):
                        if line.startswith(b"id:"):
                            self.received.append((int(line[3:]), now))
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            self.opened.set()
            writer.close()


def setup_keys(url: str) -> tuple[str, str]:
    """(a point's key for the writer, a partner's key for the streams)."""
    with httpx.Client(base_url=url, headers=ADMIN) as client:
        point = client.post("/v1/points", json={"number": "01", "name": "bench", "jurisdiction": "6400"}).json()
        writer = client.post("/v1/api-keys", json={"role": "point", "point_id": point["id"]}).json()["secret"]
        reader = client.post("/v1/api-keys", json={"role": "partner"}).json()["secret"]
    return writer, reader


async def write_steadily(
    client: httpx.AsyncClient, key: str, seconds: float, tag: str
) -> tuple[dict[str, float], dict[str, float]]:
    """Registers RATE contracts a second for `seconds`: (contract id -> when its commit was acknowledged,
    contract id -> when its POST was sent). The commit happened between the two."""
    acked: dict[str, float] = {}
    sent: dict[str, float] = {}
    started = time.perf_counter()

    async def one(i: int) -> None:
        body = contract_body(title=f"sse bench {tag} {i}", amount=f"{100000 + i}.00", technology_amount="90000.00")
        asked = time.perf_counter()
        r = await client.post("/v1/contracts", json=body, headers={"Authorization": f"Bearer {key}"})
        now = time.perf_counter()
        if r.status_code == 201:
            acked[r.json()["id"]] = now
            sent[r.json()["id"]] = asked
        else:
            print(f"  write {i} answered {r.status_code}: {r.text[:200]}", flush=True)

    tasks = []
    for i in range(int(seconds * RATE)):
        delay = started + i / RATE - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    return acked, sent


async def feed_after(client: httpx.AsyncClient, after: int) -> list[tuple[int, str]]:
    """(position, contract id) of every public event after `after`, read page by page."""
    events = []
    while True:
        page = orjson.loads((await client.get("/v1/events", params={"after": after, "limit": 1000})).content)
        events += [(e["position"], e["subject"]) for e in page["events"]]
        if page["next_after"] == after:
            return events
        after = page["next_after"]


async def measure(url: str, port: int, keys: tuple[str, str], clients: int, seconds: float, tag: str) -> dict:
    writer_key, reader_key = keys
    async with httpx.AsyncClient(base_url=url, headers=ADMIN, timeout=60) as client:
        start = (await client.get("/v1/events", params={"after": 0, "limit": 1})).json()["head"]
        streams = [StreamClient("127.0.0.1", port, reader_key, start) for _ in range(clients)]
        tasks = [asyncio.create_task(s.run()) for s in streams]
        await asyncio.gather(*(s.opened.wait() for s in streams))
        refused = [s.error for s in streams if s.error]
        acked, sent = await write_steadily(client, writer_key, seconds, tag)
        expected = await feed_after(client, start)
        last = expected[-1][0] if expected else start
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(not s.received or s.received[-1][0] < last for s in streams):
            await asyncio.sleep(0.1)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    positions = [p for p, _ in expected]
    subject = dict(expected)
    wrong = sum(1 for s in streams if [p for p, _ in s.received] != positions)
    latencies = sorted(
        (seen - acked[subject[p]]) * 1000 for s in streams for p, seen in s.received if subject.get(p) in acked
    )
    # An upper bound: from the moment the POST was sent (before the commit, which the answer may follow late).
    from_sent = sorted(
        (seen - sent[subject[p]]) * 1000 for s in streams for p, seen in s.received if subject.get(p) in sent
    )
    return {
        "clients": clients,
        "events": len(positions),
        "acknowledged": len(acked),
        "wrong": wrong + len(refused),
        "refused": refused[:3],
        "deliveries": len(latencies),
        "p50": percentile(latencies, 0.50),
        "p99": percentile(latencies, 0.99),
        "max": latencies[-1] if latencies else float("nan"),
        "p99_from_sent": percentile(from_sent, 0.99),
        "post_p99": percentile(sorted((acked[c] - sent[c]) * 1000 for c in acked), 0.99),
    }


def percentile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def main() -> None:
    problem = postgres.server_problem()
    if problem:
        sys.exit(problem)
    run = Run("sse")
    workdir = Path(tempfile.mkdtemp(prefix="tcr-bench-sse-"))
    url = postgres.create_database("tcr_bench_sse")
    env = {"TCR_ADMIN_KEY": ADMIN_KEY, "TCR_DATA_DIR": str(workdir), "TCR_ACCESS_LOG": "0"}
    try:
        service = start_service("bench-sse", REGISTRY_APP, {**env, "TCR_REGISTRY_DATABASE_URL": url}, workdir)
        try:
            keys = setup_keys(service.url)
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                print(f"sse: 1 client, {RATE:g} contracts/s for {BASELINE_SECONDS:g}s ...", flush=True)
                one = runner.run(measure(service.url, service.port, keys, 1, BASELINE_SECONDS, "one"))
                print(f"sse: {CLIENTS} clients, {RATE:g} contracts/s for {SECONDS:g}s ...", flush=True)
                many = runner.run(measure(service.url, service.port, keys, CLIENTS, SECONDS, "many"))
        finally:
            service.stop()
    finally:
        postgres.drop_database(url)
    for label, m in (("1 client", one), (f"{CLIENTS} clients", many)):
        print(
            f"  {label}: {m['events']} events ({m['acknowledged']} acknowledged), {m['deliveries']} deliveries, "
            f"commit to delivery p50 {m['p50']:.1f} ms, p99 {m['p99']:.1f} ms, max {m['max']:.1f} ms "
            f"(p99 from the POST sent: {m['p99_from_sent']:.1f} ms; the POSTs' own p99 {m['post_p99']:.1f} ms); "
            f"clients missing, repeating or misordering an event: {m['wrong']} {m['refused'] or ''}"
        )
    run.add(
        figure(
            f"SSE /v1/events/stream, {CLIENTS} clients, commit to delivery p99",
            many["p99"],
            "ms",
            at_most=100,
            baseline=one["p99"],
            baseline_name="the same with 1 client",
            clients=CLIENTS,
            contracts_per_s=RATE,
            events=many["events"],
            deliveries=many["deliveries"],
            p50_ms=round(many["p50"], 2),
            max_ms=round(many["max"], 2),
            p99_from_post_sent_ms=round(many["p99_from_sent"], 2),
            post_p99_ms=round(many["post_p99"], 2),
            post_p99_ms_one_client=round(one["post_p99"], 2),
        )
    )
    run.add(
        figure(
            f"SSE clients of {CLIENTS} missing, repeating or misordering an event",
            many["wrong"],
            "clients",
            at_most=0,
        )
    )
    run.write()


if __name__ == "__main__":
    main()
