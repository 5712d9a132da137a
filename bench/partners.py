"""Partner delivery benchmark (issue 13, the webhooks row): webhook deliveries per second with 20 subscriptions
to 20 local receivers, against one subscription to one receiver in the same run; and the latency from a
certification to its webhook's receipt (p50/p99). Writes bench-results/partners.json through bench/results.py.

    python bench/partners.py [--events 1000] [--subscriptions 20] [--certifications 200] [--receiver-processes 2]

The publisher is the real registry (SQLite, webhooks mounted as docs/partners.md says, TCR_WEBHOOK_ALLOW_LOOPBACK=1
so that it may reach 127.0.0.1). The receivers are real HTTP servers (bench/webhook_receivers.py: uvicorn, one port
per receiver, several receivers per process) that verify every signature with the partner client and check their
own order; the run fails unless each subscription received every matching event exactly once, in position order.
Delivery is one request at a time per subscription (position order), so one subscription's rate is bounded by the
round trip to its partner and the cursor write; the total grows with subscriptions delivering side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.results import Run, figure  # noqa: E402
from tests.partners.conftest import ADMIN  # noqa: E402
from tests.partners.registry import REGISTRY_WITH_WEBHOOKS, RegistryClient, start_registry  # noqa: E402
from tests.support.processes import ServiceProcess, free_port, start_service  # noqa: E402

SELLERS = ("640104", "640205", "640302", "640402", "640502")
TYPES = ["tcr.registry.contract.*"]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def received(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


async def wait_for(path: Path, n: int, timeout: float, interval: float = 0.002) -> None:
    deadline = time.monotonic() + timeout
    while lines(path) < n:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {lines(path)} of {n} webhooks arrived in {timeout}s")
        await asyncio.sleep(interval)


async def matching_positions(http: httpx.AsyncClient, url: str) -> list[int]:
    """Every position a `tcr.registry.contract.*` subscription from 0 must receive, read from the feed itself."""
    positions, after = [], 0
    while True:
        page = (await http.get(f"{url}/v1/events", params={"after": after, "limit": 1000}, headers=ADMIN)).json()
        positions += [e["position"] for e in page["events"] if e["type"].startswith("tcr.registry.contract.")]
        if page["next_after"] <= after:
            return positions
        after = page["next_after"]


class Receivers:
    """`count` receivers spread over `processes` processes of bench/webhook_receivers.py."""

    def __init__(self, work: Path, ports: list[int], secrets: list[str], processes: int) -> None:
        self.ports = ports
        self.processes: list[subprocess.Popen] = []
        pairs = [{"port": port, "secret": s} for port, s in zip(ports, secrets, strict=True)]
        for p in range(min(processes, len(pairs))):
            config = work / f"receivers-{len(ports)}-{p}.json"
            config.write_text(json.dumps(pairs[p::processes]))
            log = open(work / f"receivers-{len(ports)}-{p}.log", "ab")  # noqa: SIM115 - lives as long as the process
            self.processes.append(
                subprocess.Popen(
                    [sys.executable, str(ROOT / "bench" / "webhook_receivers.py"), str(config)], stdout=log, stderr=log
                )
            )

    async def ready(self, http: httpx.AsyncClient) -> None:
        for port in self.ports:
            for _ in range(600):
                try:
                    await http.get(f"http://127.0.0.1:{port}/healthz")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
            else:
                raise SystemExit(f"receiver on {port} did not start")

    async def received(self, http: httpx.AsyncClient) -> int:
        counts = await asyncio.gather(*(http.get(f"http://127.0.0.1:{p}/count") for p in self.ports))
        return sum(r.json()["received"] for r in counts)

    async def reports(self, http: httpx.AsyncClient) -> list[dict]:
        return [(await http.get(f"http://127.0.0.1:{p}/report")).json() for p in self.ports]

    def kill(self) -> None:
        for process in self.processes:
            process.kill()
            process.wait()


async def subscribe_paused(http: httpx.AsyncClient, publisher: str, url: str) -> dict:
    sub = (
        await http.post(
            f"{publisher}/v1/subscriptions", headers=ADMIN, json={"url": url, "event_types": TYPES, "start": "0"}
        )
    ).json()
    # paused until the receivers are up, so that the clock does not include a first retry's backoff
    await http.patch(f"{publisher}/v1/subscriptions/{sub['id']}", json={"status": "paused"}, headers=ADMIN)
    return sub


async def delivery_rate(
    http: httpx.AsyncClient,
    publisher: ServiceProcess,
    work: Path,
    subscriptions: int,
    processes: int,
    expected: list[int],
) -> tuple[float, float, float, float]:
    """Deliveries/s from position 0 to `subscriptions` subscriptions with a receiver each; checks every receiver
    got every expected position once, in order. Returns (deliveries/s, seconds, publisher CPU ms per delivery,
    receivers' CPU ms per delivery): the CPU figures do not depend on how busy the machine is, the rate does."""
    pid = publisher.process.pid
    publisher = publisher.url
    ports = [free_port() for _ in range(subscriptions)]
    subs = [await subscribe_paused(http, publisher, f"http://127.0.0.1:{port}/hook") for port in ports]
    receivers = Receivers(work, ports, [s["secret"] for s in subs], processes)
    try:
        await receivers.ready(http)
        total = len(expected) * subscriptions
        started, cpu = time.perf_counter(), cpu_seconds(pid)
        receiver_cpu = sum(cpu_seconds(r.pid) for r in receivers.processes)
        for sub in subs:
            await http.patch(f"{publisher}/v1/subscriptions/{sub['id']}", json={"status": "active"}, headers=ADMIN)
        deadline = time.monotonic() + 900
        while (done := await receivers.received(http)) < total:
            if time.monotonic() > deadline:
                raise SystemExit(f"only {done} of {total} webhooks arrived")
            await asyncio.sleep(0.05)
        elapsed, cpu = time.perf_counter() - started, cpu_seconds(pid) - cpu
        receiver_cpu = sum(cpu_seconds(r.pid) for r in receivers.processes) - receiver_cpu
        for sub, report in zip(subs, await receivers.reports(http), strict=True):
            problems = {k: report[k] for k in ("out_of_order", "duplicates", "invalid") if report[k]}
            if report["positions"] != expected or problems:
                raise SystemExit(
                    f"subscription {sub['id']}: {report['received']} of {len(expected)} events, {problems or ''} "
                    "not every event once in position order"
                )
        for sub in subs:
            await http.delete(f"{publisher}/v1/subscriptions/{sub['id']}", headers=ADMIN)
        return total / elapsed, elapsed, cpu * 1000 / total, receiver_cpu * 1000 / total
    finally:
        receivers.kill()


async def main(events: int, subscriptions: int, certifications: int, processes: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="tcr-bench-partners-"))
    run = Run("partners")
    processes_started = []
    async with httpx.AsyncClient(timeout=60) as http:
        try:
            # The real registry, with the webhook router and worker mounted as docs/partners.md says.
            publisher = start_registry(
                work, work, app=REGISTRY_WITH_WEBHOOKS, TCR_ACCESS_LOG="0", TCR_WEBHOOK_ALLOW_LOOPBACK="1"
            )
            processes_started.append(publisher)
            registry = RegistryClient(http, publisher)
            await registry.setup_point()

            # A backlog of submitted contracts; every subscription starts from position 0.
            semaphore = asyncio.Semaphore(16)

            async def submit(i: int) -> None:
                async with semaphore:
                    await registry.submit(seller_region=SELLERS[i % len(SELLERS)])

            await asyncio.gather(*(submit(i) for i in range(events)))
            expected = await matching_positions(http, publisher.url)

            # 1. Delivery rate: one subscription to one receiver (the baseline), then many side by side.
            one, one_s, one_cpu, _ = await delivery_rate(http, publisher, work, 1, 1, expected)
            many, many_s, many_cpu, many_receiver_cpu = await delivery_rate(
                http, publisher, work, subscriptions, processes, expected
            )

            # 2. Latency: certification -> receipt, one at a time, a subscription at the head.
            port = free_port()
            sub = (
                await http.post(
                    f"{publisher.url}/v1/subscriptions",
                    headers=ADMIN,
                    json={
                        "url": f"http://127.0.0.1:{port}/hook",
                        "event_types": ["tcr.registry.contract.certified.v1"],
                        "start": "now",
                    },
                )
            ).json()
            log2 = work / "latency.jsonl"
            processes_started.append(
                start_service(
                    "receiver2",
                    "tests.partners.receiver_app:create_app",
                    {"RECEIVER_SECRET": sub["secret"], "RECEIVER_LOG": str(log2)},
                    work,
                    port=port,
                )
            )
            latencies = []
            for i in range(certifications):
                contract = await registry.submit()
                t0 = time.time()
                await registry.certify(contract)
                await wait_for(log2, i + 1, timeout=30)
                last = received(log2)[-1]
                assert last["data"]["contract_id"] == contract
                latencies.append((last["received_at"] - t0) * 1000)
        finally:
            for process in processes_started:
                process.kill()

    print("partner delivery benchmark: the registry (SQLite) with webhooks mounted, local receivers")
    notes = {"events_per_subscription": len(expected), "database": "sqlite"}
    run.add(
        figure(
            f"webhooks: {subscriptions} subscriptions, {subscriptions} receivers",
            many,
            "deliveries/s",
            at_least=1000,
            baseline=one,
            baseline_name="one subscription, one receiver",
            seconds=round(many_s, 2),
            publisher_cpu_ms_per_delivery=round(many_cpu, 3),
            receiver_processes=processes,
            **notes,
        )
    )
    run.add(
        figure(
            "webhooks: one subscription, one receiver",
            one,
            "deliveries/s",
            seconds=round(one_s, 2),
            publisher_cpu_ms_per_delivery=round(one_cpu, 3),
            **notes,
        )
    )
    run.add(
        figure(
            f"webhooks: publisher CPU per delivery, {subscriptions} subscriptions",
            many_cpu * 1000,
            "µs",
            note="registry process, all threads; independent of the machine's load, unlike the rates",
        )
    )
    run.add(
        figure(
            f"webhooks: receivers' CPU per delivery, {subscriptions} subscriptions",
            many_receiver_cpu * 1000,
            "µs",
            note="every receiver process; they share the machine's cores with the publisher",
        )
    )
    run.add(
        figure(
            "webhooks: POST certify -> webhook received, p50", statistics.median(latencies), "ms", runs=certifications
        )
    )
    run.add(figure("webhooks: POST certify -> webhook received, p99", pct(latencies, 0.99), "ms", runs=certifications))
    run.write()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000, help="contracts submitted (one public event each)")
    parser.add_argument("--subscriptions", type=int, default=20)
    parser.add_argument("--certifications", type=int, default=200)
    parser.add_argument("--receiver-processes", type=int, default=2)
    args = parser.parse_args()
    asyncio.run(main(args.events, args.subscriptions, args.certifications, args.receiver_processes))
