"""Benchmark of the subsidy service: cold-start catch-up over ~100k registry events, and certify-to-ledger latency.

1. A registry (real uvicorn process, PostgreSQL) receives BENCH_CONTRACTS contracts (submit + certify, a few amended
   and revoked) through its application layer: about
   100k public feed events.
   The registry's own contract index is brought up to date before the subsidy service starts (as in a registry
   that was running while the events were written); BENCH_REGISTRY_INDEX_READY=0 leaves it to be rebuilt by the
   registry during the subsidy's catch-up, competing for the same cores.
2. A subsidy service (real process, its own PostgreSQL database) starts cold and follows the feed from zero in
   pages of 1000, applying up to TCR_SUBSIDY_BATCH_PAGES (5) pages per transaction and reading
   TCR_SUBSIDY_PREFETCH pages ahead (settings taken from this environment, as the service takes them);
   catch-up events/s = public events applied / seconds from start until its status shows the head reached.
3. With the service caught up, BENCH_LATENCY_SAMPLES certifications, one at a time: latency = from the registry
   answering the certify request until the subsidy service answers `GET /v1/contracts/{id}/awards?min_position=`
   (which returns as soon as the follower has applied that position). p50 / p99.
Prints figures; asserts nothing. Run: make bench (or python bench/subsidy.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.subsidy.history import party, terms  # noqa: E402
from tests.subsidy.stack import ADMIN_KEY, start_registry, start_subsidy  # noqa: E402
from tests.support import postgres  # noqa: E402

CONTRACTS = int(os.environ.get("BENCH_CONTRACTS", 48_500))  # ~100k public registry events
SAMPLES = int(os.environ.get("BENCH_LATENCY_SAMPLES", 200))
BACKEND = os.environ.get("BENCH_BACKEND", "postgresql")
CATCH_UP_REGISTRY_INDEX = os.environ.get("BENCH_REGISTRY_INDEX_READY", "1") == "1"
BATCH_PAGES = int(os.environ.get("TCR_SUBSIDY_BATCH_PAGES", 5))
PREFETCH = int(os.environ.get("TCR_SUBSIDY_PREFETCH", 4))
CST = timezone(timedelta(hours=8))
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def body(i: int) -> dict:
    t = terms(
        amount=f"{100000 + (i * 7919) % 9_000_000}.{i % 100:02d}",
        technology_amount="90000.00",
        buyer=party("enterprise", 1000 + i % 997, region="640104"),
        seller=party("university" if i % 3 else "enterprise", 5000 + i % 211, region="640105"),
        intermediary=party("social_organisation", 9000 + i % 13) if i % 10 == 0 else None,
        result_id=f"ZL{i % 501}",
    )
    for role in ("seller", "buyer", "intermediary"):
        if t.get(role):
            t[role] = {k: v for k, v in t[role].items() if v is not None}
    return t


async def load(registry_db_url: str, tmp: Path) -> int:
    """Register CONTRACTS contracts through the registry's application layer (the commands its HTTP routes run,
    the same path as its demo loader; no HTTP, so loading is quick): submit + certify, every 20th amended, every
    50th revoked. Returns the registry's head position."""
    import uuid
    from decimal import Decimal

    from sqlalchemy import insert

    from tcr_registry.adapters.persistence.models import points
    from tcr_registry.application import commands
    from tcr_registry.application.actor import PointActor
    from tcr_registry.bootstrap import RegistryRuntime
    from tcr_registry.domain.terms import Party, Terms
    from tcr_registry.settings import RegistrySettings

    service = RegistryRuntime(
        RegistrySettings(registry_database_url=registry_db_url, data_dir=tmp, admin_key=ADMIN_KEY, demo=False)
    )

    await service.start()
    try:
        actors = []
        async with service.engine.begin() as conn:
            for n in range(1, 9):
                point_id = str(uuid.uuid4())
                await conn.execute(
                    insert(points).values(
                        id=point_id, number=f"{n:02d}", name=f"bench {n}", jurisdiction="6400", created_by="bench"
                    )
                )
                actors.append(PointActor(point_id, "6400", f"{n:02d}"))
        now = datetime.now(UTC)

        def make_party(p: dict | None) -> Party | None:
            return (
                None
                if p is None
                else Party(
                    name=p["name"],
                    kind=p["kind"],
                    credit_code=p.get("credit_code"),
                    region=p.get("region"),
                    country=p.get("country"),
                )
            )

        async def life(i: int) -> None:
            t = body(i)
            terms_ = Terms(
                title=t["title"],
                category=t["category"],
                subcategory=t["subcategory"],
                signed_on=datetime.fromisoformat(t["signed_on"]).date(),
                amount=Decimal(t["amount"]),
                technology_amount=Decimal(t["technology_amount"]),
                consideration="money",
                seller=make_party(t["seller"]),
                buyer=make_party(t["buyer"]),
                result_id=t["result_id"],
                intermediary=make_party(t.get("intermediary")),
            )
            actor = actors[i % len(actors)]
            cid = uuid.uuid5(uuid.NAMESPACE_URL, f"tcr-bench:{i}")
            await service.writer.execute(commands.submit(cid, actor, terms_, now))
            # certified "now" as the writer runs it: a point's numbers follow the order of certification
            await service.writer.execute(commands.certify(cid, actor, None, None, None, None, None))
            if i % 20 == 0:
                await service.writer.execute(
                    commands.amend(cid, actor, {"amount": f"{200000 + i}.00"}, "bench", now, None, None)
                )
            if i % 50 == 0:
                await service.writer.execute(commands.revoke(cid, actor, "bench", now, None))

        started = time.perf_counter()
        for chunk in range(0, CONTRACTS, 500):
            await asyncio.gather(*(life(i) for i in range(chunk, min(CONTRACTS, chunk + 500))))
            if (chunk + 500) % 10000 == 0:
                print(
                    f"  loaded {chunk + 500} contracts ({(chunk + 500) / (time.perf_counter() - started):.0f}/s)",
                    flush=True,
                )
        head = await service.event_log.head()
        if CATCH_UP_REGISTRY_INDEX:
            # A running registry keeps its contract index current as it writes; loaded this way it has not, and
            # would rebuild it (reading the whole log) while the subsidy service catches up, in the same cores.
            started = time.perf_counter()
            task = asyncio.create_task(service.index_follower.run())
            while service.index_follower.status.position < head:
                await asyncio.sleep(0.2)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            print(f"  registry contract index caught up in {time.perf_counter() - started:.0f}s", flush=True)
        return head
    finally:
        await service.stop()


def catch_up(subsidy_url: str, head: int) -> tuple[float, dict]:
    started = time.perf_counter()
    with httpx.Client(base_url=subsidy_url, headers=ADMIN, timeout=30) as client:
        while True:
            status = client.get("/v1/status").json()
            feed = status["feeds"][0]
            if feed["position"] >= head:
                return time.perf_counter() - started, status
            time.sleep(0.05)


async def latency(registry_url: str, subsidy_url: str) -> list[float]:
    samples = []
    async with (
        httpx.AsyncClient(base_url=registry_url, timeout=30) as registry,
        httpx.AsyncClient(base_url=subsidy_url, timeout=30, headers=ADMIN) as subsidy,
    ):
        r = await registry.post(
            "/v1/points", json={"number": "99", "name": "latency", "jurisdiction": "6400"}, headers=ADMIN
        )
        k = await registry.post("/v1/api-keys", json={"role": "point", "point_id": r.json()["id"]}, headers=ADMIN)
        auth = {"Authorization": f"Bearer {k.json()['secret']}"}
        for i in range(SAMPLES):
            r = await registry.post("/v1/contracts", json=body(CONTRACTS + i), headers=auth)
            cid = r.json()["id"]
            r = await registry.post(
                f"/v1/contracts/{cid}/certify",
                headers=auth,
                json={"certified_at": datetime(2025, 6, 1, 10, tzinfo=CST).isoformat()},
            )
            answered = time.perf_counter()
            position = r.headers["TCR-Position"]
            got = await subsidy.get(f"/v1/contracts/{cid}/awards", params={"min_position": position})
            assert got.status_code == 200 and got.json()["awards"], got.text
            samples.append((time.perf_counter() - answered) * 1000)
            await asyncio.sleep(0.02)
    return samples


async def decompose(registry_url: str, subsidy_db_url: str) -> tuple[int, float, float]:
    """Replay the same feed into a fresh database in this process, timing separately the registry's page reads
    and the subsidy's applies (decisions + writes + position, one transaction per BATCH_PAGES pages, as the
    service does while catching up)."""
    from tcr_shared.feeds.client import FeedClient
    from tcr_shared.platform.database import Database
    from tcr_subsidy.adapters.feeds import NotifyingSink
    from tcr_subsidy.adapters.persistence import migrate
    from tcr_subsidy.adapters.rule_files import default_rule_book
    from tcr_subsidy.application.projection import AwardProjection
    from tcr_subsidy.domain.decision import Engine

    database = Database(subsidy_db_url)
    await asyncio.to_thread(migrate.upgrade, database)
    db = database.async_engine()
    feed = FeedClient(registry_url, ADMIN_KEY, page_size=1000)
    sink = NotifyingSink(db, AwardProjection(Engine(default_rule_book())), lambda: None)
    read_s = apply_s = 0.0
    events = position = 0
    try:
        while True:
            batch, target = [], position
            for _ in range(BATCH_PAGES):
                t0 = time.perf_counter()
                page = await feed.page(target)
                read_s += time.perf_counter() - t0
                if page.next_after <= target:
                    break
                batch.extend(page.events)
                target = page.next_after
            if target <= position:
                break
            t1 = time.perf_counter()
            await sink.apply(batch, target)
            apply_s += time.perf_counter() - t1
            events += len(batch)
            position = target
    finally:
        await feed.aclose()
        await db.dispose()
    return events, read_s, apply_s


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        drop = []
        if BACKEND == "postgresql":
            reg_url, sub_url = postgres.create_database("bench_registry"), postgres.create_database("bench_subsidy")
            drop = [reg_url, sub_url]
        else:
            reg_url, sub_url = f"sqlite:///{tmp / 'registry.db'}", f"sqlite:///{tmp / 'subsidy.db'}"
        print(
            f"subsidy: loading {CONTRACTS} contracts into the registry ({BACKEND}, application layer) ...", flush=True
        )
        started = time.perf_counter()
        head = asyncio.run(load(reg_url, tmp))
        print(f"  registry head {head} positions after {time.perf_counter() - started:.0f}s", flush=True)
        registry = start_registry(reg_url, tmp)
        try:
            subsidy = start_subsidy(sub_url, tmp, registry.url)
            try:
                seconds, status = catch_up(subsidy.url, head)
                feed = status["feeds"][0]
                print(
                    f"catch-up (cold start, pages of 1000, up to {BATCH_PAGES} per transaction, prefetch {PREFETCH}, "
                    f"{BACKEND}; load average {os.getloadavg()[0]:.2f}): {feed['events_applied']} events "
                    f"({head} positions) in {seconds:.1f}s = {feed['events_applied'] / seconds:,.0f} events/s; "
                    f"{status['award_feed']['head']} award events appended",
                    flush=True,
                )
                samples = asyncio.run(latency(registry.url, subsidy.url))
                print(
                    f"certify-to-ledger latency over {len(samples)} certifications (long poll): "
                    f"p50 {pct(samples, 50):.1f} ms, p99 {pct(samples, 99):.1f} ms, max {max(samples):.1f} ms, "
                    f"mean {statistics.mean(samples):.1f} ms",
                    flush=True,
                )
            finally:
                subsidy.stop()
            if BACKEND == "postgresql":
                replay_url = postgres.create_database("bench_subsidy_replay")
                drop.append(replay_url)
            else:
                replay_url = f"sqlite:///{tmp / 'replay.db'}"
            events, read_s, apply_s = asyncio.run(decompose(registry.url, replay_url))
            print(
                f"the same catch-up taken apart (one process, no overlap): registry feed reads {events / read_s:,.0f} "
                f"events/s ({read_s:.1f}s), subsidy page applies {events / apply_s:,.0f} events/s ({apply_s:.1f}s)",
                flush=True,
            )
        finally:
            registry.kill()
            for url in drop:
                postgres.drop_database(url)


if __name__ == "__main__":
    main()
