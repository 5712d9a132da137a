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
4. The same feed replayed in this process into a fresh database, timing the registry's page reads and the
   subsidy's applies apart ("page applies alone").
5. A rebuild of BENCH_REBUILD_EVENTS (1,000,000) events in a process of its own (`--rebuild N`): the same kind of
   history (submit + certify, every 20th amended, every 50th revoked; made in the process, page by page, so that
   the history itself takes no memory), applied as the service catches up (BATCH_PAGES pages of 1000 per
   transaction) into a fresh database; seconds for the whole history and the process's peak RSS (VmHWM).
Also the peak RSS of the subsidy service process over its catch-up (step 2). The baseline of both catch-up rows:
the eventsourcing library's own ProjectionRunner over the same registry events in the same run
(bench/library_baseline.py; PostgreSQL only).
Prints the rows and writes bench-results/subsidy.json through bench/results.py; asserts nothing.
Run: make bench (or python bench/subsidy.py). Figures without a goal are context ("measured").
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from library_baseline import projection_runner_rate  # noqa: E402
from results import Run, figure  # noqa: E402

from tests.subsidy.history import party, terms  # noqa: E402
from tests.subsidy.stack import ADMIN_KEY, start_registry, start_subsidy  # noqa: E402
from tests.support import postgres  # noqa: E402

CONTRACTS = int(os.environ.get("BENCH_CONTRACTS", 48_500))  # ~100k public registry events
SAMPLES = int(os.environ.get("BENCH_LATENCY_SAMPLES", 200))
BACKEND = os.environ.get("BENCH_BACKEND", "postgresql")
CATCH_UP_REGISTRY_INDEX = os.environ.get("BENCH_REGISTRY_INDEX_READY", "1") == "1"
BATCH_PAGES = int(os.environ.get("TCR_SUBSIDY_BATCH_PAGES", 5))
PREFETCH = int(os.environ.get("TCR_SUBSIDY_PREFETCH", 4))
REBUILD_EVENTS = int(os.environ.get("BENCH_REBUILD_EVENTS", 1_000_000))
GOAL_EVENTS_PER_S = 50_000
GOAL_REBUILD_SECONDS = 20.0  # for 1,000,000 events
GOAL_RSS_MB = 300.0
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


def rss_mb(pid: int | str = "self", field: str = "VmHWM") -> float:
    """A process's resident set from /proc (VmRSS now, VmHWM its peak), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def synthetic_history(events: int, page: int = 1000):
    """Pages of registry feed events like the loader's (submit + certify, every 20th amended, every 50th revoked),
    made a few thousand at a time so that a history of millions takes no memory; positions and ids run on."""
    from tests.subsidy.history import History

    made, i, pending = 0, 0, []
    while made < events:
        h = History()
        for n in range(i, i + 1000):
            cid = h.submit(body(n), str(uuid.uuid5(uuid.NAMESPACE_URL, f"tcr-bench:{n}")))
            h.certify(cid, datetime(2024 + n % 2, 1 + n % 12, 1 + n % 28, 10, tzinfo=CST))
            if n % 20 == 0:
                h.amend(cid, datetime(2025, 12, 1, tzinfo=CST), amount=f"{200000 + n}.00")
            if n % 50 == 0:
                h.revoke(cid, datetime(2025, 12, 2, tzinfo=CST))
        i += 1000
        for e in h.events[: events - made]:
            made += 1
            position = made
            pending.append(e.model_copy(update={"position": position, "id": f"{e.id[:-12]}{position:012d}"}))
            if len(pending) == page:
                yield pending
                pending = []
    if pending:
        yield pending


async def rebuild(events: int, url: str) -> dict:
    """Apply `events` synthetic events into a fresh database as the service catches up: BATCH_PAGES pages per
    transaction, each with its position."""
    from tcr_shared.platform.database import Database
    from tcr_subsidy.adapters.feeds import NotifyingSink
    from tcr_subsidy.adapters.persistence import migrate
    from tcr_subsidy.adapters.rule_files import default_rule_book
    from tcr_subsidy.application.projection import AwardProjection
    from tcr_subsidy.domain.decision import Engine

    database = Database(url)
    await asyncio.to_thread(migrate.upgrade, database)
    db = database.async_engine()
    projection = AwardProjection(Engine(default_rule_book()))
    sink = NotifyingSink(db, projection, lambda: None)
    applying = making = apply_cpu = 0.0
    rss = []
    batch: list = []
    try:
        made = time.perf_counter()
        for page in synthetic_history(events):
            batch.extend(page)
            if len(batch) < BATCH_PAGES * 1000 and batch[-1].position < events:
                continue
            t0, c0 = time.perf_counter(), time.process_time()
            making += t0 - made
            await sink.apply(batch, batch[-1].position)
            made = time.perf_counter()
            applying += made - t0
            apply_cpu += time.process_time() - c0
            batch = []
            rss.append(rss_mb(field="VmRSS"))
    finally:
        await db.dispose()
    return {
        "events": events,
        "apply_seconds": applying,
        "apply_cpu_seconds": apply_cpu,
        "history_seconds": making,
        "awards": projection.awards_total,
        "rss_mb_first": rss[0] if rss else None,
        "rss_mb_last": rss[-1] if rss else None,
        "rss_mb_peak": rss_mb(),
    }


def rebuild_in_own_process(events: int) -> dict:
    """`--rebuild N` in a fresh interpreter: its peak RSS is the rebuild's alone."""
    import json
    import subprocess

    url = postgres.create_database("bench_subsidy_rebuild") if BACKEND == "postgresql" else None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            url = url or f"sqlite:///{Path(tmp) / 'rebuild.db'}"
            out = subprocess.run(
                [sys.executable, __file__, "--rebuild", str(events), url],
                check=True,
                capture_output=True,
                text=True,
                cwd=ROOT,
            )
    finally:
        if BACKEND == "postgresql":
            postgres.drop_database(url)
    return json.loads(out.stdout.strip().splitlines()[-1])


def cpu_seconds(pid: int) -> float:
    """A process's CPU time so far (user + system), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main() -> None:
    run = Run("subsidy")
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
                run.load_average["before"] = os.getloadavg()[0]
                cpu_before = cpu_seconds(subsidy.process.pid)
                seconds, status = catch_up(subsidy.url, head)
                service_cpu = cpu_seconds(subsidy.process.pid) - cpu_before
                service_rss = rss_mb(subsidy.process.pid)
                feed = status["feeds"][0]
                applied = feed["events_applied"]
                print(
                    f"catch-up (cold start, pages of 1000, up to {BATCH_PAGES} per transaction, prefetch {PREFETCH}, "
                    f"{BACKEND}; load average {os.getloadavg()[0]:.2f}): {applied} events "
                    f"({head} positions) in {seconds:.1f}s = {applied / seconds:,.0f} events/s; "
                    f"{status['award_feed']['head']} award events appended; service peak RSS {service_rss:.0f} MB, "
                    f"service CPU {service_cpu:.1f}s = {service_cpu / applied * 1e6:.0f} us per event",
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
            # The baseline of both catch-up rows: the eventsourcing library's own ProjectionRunner over the same
            # registry's events, same run (PostgreSQL only: SQLite's recorder cannot subscribe).
            baseline = projection_runner_rate(reg_url) if BACKEND == "postgresql" else None
        finally:
            registry.kill()
            for url in drop:
                postgres.drop_database(url)
    print(f"rebuild of {REBUILD_EVENTS:,} events in a process of its own ...", flush=True)
    rebuilt = rebuild_in_own_process(REBUILD_EVENTS)
    per_million = rebuilt["apply_seconds"] * 1_000_000 / rebuilt["events"]
    print(
        f"  {rebuilt['events']:,} events applied in {rebuilt['apply_seconds']:.1f}s "
        f"({rebuilt['events'] / rebuilt['apply_seconds']:,.0f} events/s, our CPU "
        f"{rebuilt['apply_cpu_seconds'] / rebuilt['events'] * 1e6:.0f} us per event; making the history took "
        f"{rebuilt['history_seconds']:.1f}s more), RSS {rebuilt['rss_mb_first']:.0f} MB after the first batch, "
        f"{rebuilt['rss_mb_last']:.0f} MB after the last, peak {rebuilt['rss_mb_peak']:.0f} MB",
        flush=True,
    )

    baseline_name = "eventsourcing ProjectionRunner, same events, same run" if baseline else None
    common = {"backend": BACKEND, "batch_pages": BATCH_PAGES, "prefetch": PREFETCH}
    run.add(
        figure(
            "subsidy catch-up through the registry feed",
            applied / seconds,
            "events/s",
            at_least=GOAL_EVENTS_PER_S,
            baseline=baseline,
            baseline_name=baseline_name,
            events=applied,
            seconds=round(seconds, 2),
            service_cpu_us_per_event=round(service_cpu / applied * 1e6, 1),
            **common,
        )
    )
    run.add(
        figure(
            "subsidy page applies alone (same feed, one process)",
            events / apply_s,
            "events/s",
            baseline=baseline,
            baseline_name=baseline_name,
            events=events,
            seconds=round(apply_s, 2),
            **common,
        )
    )
    run.add(figure("registry feed reads in the same replay", events / read_s, "events/s", seconds=round(read_s, 2)))
    run.add(
        figure(
            "subsidy rebuild, seconds per 1M events (page applies)",
            per_million,
            "s",
            at_most=GOAL_REBUILD_SECONDS,
            events=rebuilt["events"],
            seconds=round(rebuilt["apply_seconds"], 2),
            cpu_us_per_event=round(rebuilt["apply_cpu_seconds"] / rebuilt["events"] * 1e6, 1),
            extrapolated=rebuilt["events"] < 1_000_000,
            **common,
        )
    )
    run.add(
        figure(
            f"subsidy rebuild of {rebuilt['events']:,} events, peak RSS",
            rebuilt["rss_mb_peak"],
            "MB",
            at_most=GOAL_RSS_MB,
            rss_mb_after_first_batch=round(rebuilt["rss_mb_first"], 1),
            rss_mb_after_last_batch=round(rebuilt["rss_mb_last"], 1),
        )
    )
    run.add(figure("subsidy service peak RSS over its catch-up", service_rss, "MB", at_most=GOAL_RSS_MB))
    run.add(figure("certify-to-ledger latency p99 (long poll)", pct(samples, 99), "ms", p50=round(pct(samples, 50), 1)))
    run.write()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--rebuild"]:
        import json

        print(json.dumps(asyncio.run(rebuild(int(sys.argv[2]), sys.argv[3]))))
    else:
        main()
