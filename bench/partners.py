"""Partner delivery benchmark: webhook delivery rate to one local receiver, and the latency from a
certification to its webhook's receipt (p50/p99). Prints figures; asserts nothing.

    python bench/partners.py [--events 2000] [--certifications 200]

The receiver is a real partner: a uvicorn process verifying every Standard Webhooks signature with the
partner client and appending each event to a file. Delivery is one request at a time per subscription (feed
order), so the rate is bounded by the round trip to the partner.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.partners.conftest import ADMIN  # noqa: E402
from tests.partners.registry import REGISTRY_WITH_WEBHOOKS, RegistryClient, start_registry  # noqa: E402
from tests.support.processes import free_port, start_service  # noqa: E402

SELLERS = ("640104", "640205", "640302", "640402", "640502")


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


async def main(events: int, certifications: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="tcr-bench-partners-"))
    processes = []
    async with httpx.AsyncClient(timeout=60) as http:
        try:
            # The real registry, with the webhook router and worker mounted as docs/partners.md says.
            publisher = start_registry(
                work, work, app=REGISTRY_WITH_WEBHOOKS, TCR_ACCESS_LOG="0", TCR_WEBHOOK_ALLOW_LOOPBACK="1"
            )
            processes.append(publisher)
            registry = RegistryClient(http, publisher)
            await registry.setup_point()

            # 1. Delivery rate: a backlog of submitted contracts, one subscription from position 0, one receiver.
            semaphore = asyncio.Semaphore(16)

            async def submit(i: int) -> None:
                async with semaphore:
                    await registry.submit(seller_region=SELLERS[i % len(SELLERS)])

            await asyncio.gather(*(submit(i) for i in range(events)))
            port = free_port()
            sub = (
                await http.post(
                    f"{publisher.url}/v1/subscriptions",
                    headers=ADMIN,
                    json={
                        "url": f"http://127.0.0.1:{port}/hook",
                        "event_types": ["tcr.registry.contract.*"],
                        "start": "0",
                    },
                )
            ).json()
            # paused until the receiver is up, so that the clock does not include a first retry's backoff
            await http.patch(f"{publisher.url}/v1/subscriptions/{sub['id']}", json={"status": "paused"}, headers=ADMIN)
            log1 = work / "rate.jsonl"
            processes.append(
                start_service(
                    "receiver",
                    "tests.partners.receiver_app:create_app",
                    {"RECEIVER_SECRET": sub["secret"], "RECEIVER_LOG": str(log1)},
                    work,
                    port=port,
                )
            )
            log1.unlink(missing_ok=True)
            started = time.perf_counter()
            await http.patch(f"{publisher.url}/v1/subscriptions/{sub['id']}", json={"status": "active"}, headers=ADMIN)
            await wait_for(log1, events, timeout=600, interval=0.1)
            elapsed = time.perf_counter() - started
            await http.delete(f"{publisher.url}/v1/subscriptions/{sub['id']}", headers=ADMIN)

            # 2. Latency: certification (or append) -> receipt, one at a time, a subscription at the head.
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
            processes.append(
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
            for process in processes:
                process.kill()

    print("partner delivery benchmark: the registry (SQLite) with webhooks mounted, one local receiver process")
    print(
        f"  webhook delivery rate, one receiver, {events} events: {events / elapsed:,.0f} webhooks/s ({elapsed:.2f} s)"
    )
    print(
        f"  POST certify -> webhook received, {certifications} sequential: "
        f"p50 {statistics.median(latencies):.1f} ms, p99 {pct(latencies, 0.99):.1f} ms, max {max(latencies):.1f} ms"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--certifications", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(main(args.events, args.certifications))
