"""Benchmark of the reporting service: the projection build, its library baseline, and GET /v1/regions/{code}/metrics
at 32 concurrent clients with 1M events behind the figures.

1. Baseline on real registry events (PostgreSQL): a registry database is filled through the registry's application
   layer (bench/feed.py's loader: BENCH_BASELINE_CONTRACTS contracts, submit + certify, some amended and revoked).
   The eventsourcing library's own ProjectionRunner (bench/library_baseline.py) computes the county turnover sums
   over that event store, one event per transaction as the library does; then the reporting projection builds the
   same figures from the same events (read from the registry's log in process, applied through the real sink in
   batches of BENCH_BATCH_PAGES pages of 1,000, as the service's follower and `rebuild` do while catching up). Both
   rates are printed, with a check that the two computed the same figures.
2. The 1M-event build: 1,000,000 generated registry feed events (submissions, certifications, amendments,
   revocations over ten policy years, all 22 counties) are fed straight into the projection's real apply path
   (`registry_sink(engine).apply(batch, position)`: the SqlProjectionSink transaction the follower uses, batches
   of BENCH_BATCH_PAGES pages as BatchingSource merges them), not through the registry's HTTP API, which would take
   far longer to fill. The figure is events / seconds spent in `apply` (generating the events is not the
   projection's work; the wall clock including it is printed too). The generator keeps every live contract in
   memory (hundreds of thousands of objects a real follower does not hold): it is frozen out of the cyclic garbage
   collector after each batch (gc.freeze), so that collections scanning the generator's state are not counted as
   the projection's time.
3. The reporting service then runs as a real uvicorn process on that PostgreSQL database, and wrk (Debian package
   `wrk`) drives random (region, year) metrics requests at it (each request formatted once in the Lua script, so
   wrk's own CPU goes to sending): first in the normal configuration (the FastAPI route answering from the
   per-version answer cache), then with the cache off (every request reads the figures table). Each: a fresh
   uvicorn process, 3 s of warm-up, then the measured run.

Prints the figures and writes bench-results/reporting.json (bench/results.py) with the load average; asserts
nothing. Run: make bench, or python bench/reporting.py (BENCH_EVENTS, BENCH_BATCH_PAGES, BENCH_BASELINE_CONTRACTS,
BENCH_SECONDS, BENCH_CLIENTS, BENCH_WRK_THREADS override the defaults). By default the database is built fresh and
dropped afterwards; `--reuse` (for iterating on the service) keeps it as `tcr_bench_reporting_kept` and, when it
already holds the projection of BENCH_EVENTS events, measures it again without rebuilding (no build figures then).
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import feed as registry_fill  # noqa: E402  (bench/feed.py: its registry loader)
from library_baseline import projection_runner_rate, runner_figures  # noqa: E402
from results import Run, figure  # noqa: E402

from tcr_reporting.adapters.persistence.migrate import upgrade  # noqa: E402
from tcr_reporting.adapters.persistence.projection import registry_sink  # noqa: E402
from tcr_shared.language.events.envelope import FeedEvent  # noqa: E402
from tcr_shared.language.regions import counties, ningxia_regions  # noqa: E402
from tcr_shared.platform.database import Database  # noqa: E402
from tests.support import postgres  # noqa: E402
from tests.support.processes import free_port, start_service  # noqa: E402

EVENTS = int(os.environ.get("BENCH_EVENTS", 1_000_000))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", 32))
SECONDS = int(os.environ.get("BENCH_SECONDS", 15))
WRK_THREADS = int(os.environ.get("BENCH_WRK_THREADS", 2))
PAGE = 1000
BATCH_PAGES = int(os.environ.get("BENCH_BATCH_PAGES", 20))  # TCR_REPORTING_BATCH_PAGES's default
BASELINE_CONTRACTS = int(os.environ.get("BENCH_BASELINE_CONTRACTS", 1000))
GOAL_BUILD = 100_000  # events/s (issue 13)
KEPT_DATABASE = "tcr_bench_reporting_kept"
YEARS = list(range(2016, 2026))
ADMIN_KEY = "bench-admin-key"
CATEGORIES = ["development", "transfer", "licence", "consulting", "service"]
OUTSIDE = ["110108", "310104", "610113", "620102"]


def generate(total: int, seed: int = 2020):
    """Pages of registry feed events: each contract submitted then certified; ~5% later amended (amount,
    category or a party's county), ~2% revoked."""
    rng = random.Random(seed)
    codes = [c.code for c in counties()]
    live: list[tuple[str, dict, int]] = []
    position = 0
    contract = 0
    page: list[FeedEvent] = []

    def party(inside: bool = True) -> dict:
        region = rng.choice(codes) if inside else rng.choice(OUTSIDE)
        return {"name": "org", "kind": "enterprise", "credit_code": None, "region": region}

    def emit(kind: str, cid: str, data: dict) -> None:
        nonlocal position
        position += 1
        page.append(
            FeedEvent(
                id=f"b{position}",
                source="/tcr/registry",
                type=f"tcr.registry.contract.{kind}.v1",
                time="2025-01-01T00:00:00Z",
                subject=cid,
                position=position,
                data={"contract_id": cid, "point_id": "bench", **data},
            )
        )

    while position < total:
        roll = rng.random()
        if live and roll < 0.05:
            cid, terms, year = live[rng.randrange(len(live))]
            new = dict(
                terms,
                amount=f"{rng.randint(1000, 5_000_000)}.{rng.randint(0, 99):02d}",
                category=rng.choice(CATEGORIES),
                seller=party(),
            )
            new["technology_amount"] = new["amount"]
            emit(
                "amended",
                cid,
                {
                    "status": "certified",
                    "terms": new,
                    "previous_terms": terms,
                    "policy_year": year,
                    "registration_number": "r",
                    "reason": "bench",
                    "changed_fields": [],
                    "amended_at": "x",
                },
            )
        elif live and roll < 0.07:
            cid, terms, year = live.pop(rng.randrange(len(live)))
            emit(
                "revoked",
                cid,
                {
                    "status": "revoked",
                    "terms": terms,
                    "policy_year": year,
                    "registration_number": "r",
                    "reason": "bench",
                    "revoked_at": "x",
                },
            )
        else:
            contract += 1
            cid = f"c{contract:08d}"
            amount = rng.randint(1000, 5_000_000)
            terms = {
                "title": "t",
                "category": rng.choice(CATEGORIES),
                "subcategory": None,
                "signed_on": "2020-01-01",
                "amount": f"{amount}.{rng.randint(0, 99):02d}",
                "technology_amount": f"{amount * 8 // 10}.00",
                "consideration": "money",
                "result_id": None,
                "seller": party(rng.random() < 0.9),
                "buyer": party(rng.random() < 0.7),
                "intermediary": None,
            }
            year = rng.choice(YEARS)
            emit("submitted", cid, {"status": "submitted", "terms": terms, "submitted_at": "x"})
            emit(
                "certified",
                cid,
                {
                    "status": "certified",
                    "terms": terms,
                    "policy_year": year,
                    "registration_number": "r",
                    "certified_at": "x",
                },
            )
            live.append((cid, terms, year))
        if len(page) >= PAGE:
            yield page
            page = []
    if page:
        yield page


async def fill(database: Database) -> tuple[int, float, float]:
    """Build the projection of EVENTS generated events: (events, seconds in apply, wall-clock seconds)."""
    await asyncio.to_thread(upgrade, database)
    engine = database.async_engine()
    sink = registry_sink(engine)
    started = time.perf_counter()
    applying = 0.0
    applied = 0
    batch: list[FeedEvent] = []

    async def apply() -> None:
        nonlocal applying, applied, batch
        gc.freeze()  # the generator's live contracts: not the projection's garbage to scan (see the docstring)
        t = time.perf_counter()
        await sink.apply(batch, batch[-1].position)
        applying += time.perf_counter() - t
        applied += len(batch)
        batch = []
        if applied % 100_000 < BATCH_PAGES * PAGE:
            print(f"  {applied:>9,} events applied ({applied / applying:,.0f} events/s in apply)", flush=True)

    try:
        for page in generate(EVENTS):
            batch.extend(page)
            if len(batch) >= BATCH_PAGES * PAGE:
                await apply()
        if batch:
            await apply()
    finally:
        gc.unfreeze()
        await engine.dispose()
    return applied, applying, time.perf_counter() - started


async def build_from_registry(registry_url: str, reporting_url: str) -> tuple[int, float, dict]:
    """The reporting projection built from the registry's own log (read in process, as `RegistryEventLog` serves
    the feed), in batches of BATCH_PAGES pages: (events, seconds for reading and applying, non-zero figures)."""
    from sqlalchemy import select

    from tcr_registry.adapters.feeds.event_log import RegistryEventLog
    from tcr_registry.adapters.persistence.event_store import Registry
    from tcr_reporting.adapters.persistence.tables import figures

    reporting = Database(reporting_url)
    await asyncio.to_thread(upgrade, reporting)
    engine = reporting.async_engine()
    app = Registry(Database(registry_url).eventsourcing_env())
    log = RegistryEventLog(app)
    sink = registry_sink(engine)
    events = 0
    try:
        started = time.perf_counter()
        batch: list[FeedEvent] = []
        read_to = applied_to = 0
        while True:
            page = await log.read(read_to, PAGE)
            batch.extend(page.events)
            done = page.next_after == read_to
            read_to = page.next_after
            if read_to > applied_to and (done or len(batch) >= BATCH_PAGES * PAGE):
                await sink.apply(batch, read_to)
                events += len(batch)
                applied_to, batch = read_to, []
            if done:
                break
        seconds = time.perf_counter() - started
        async with engine.connect() as connection:
            f = figures.c
            rows = await connection.execute(
                select(f.region, f.year, f.side, f.category, f.count, f.amount_fen, f.technology_amount_fen)
            )
            sums = {tuple(r[:4]): tuple(r[4:]) for r in rows if any(r[4:])}
    finally:
        app.close()
        await engine.dispose()
    return events, seconds, sums


def baseline(workdir: Path) -> tuple[float, int, float, bool]:
    """(library ProjectionRunner events/s, events, reporting build events/s on the same events, same figures)."""
    registry_url = postgres.create_database("tcr_bench_reporting_registry")
    reporting_url = postgres.create_database("tcr_bench_reporting_same")
    try:
        registry_fill.CONTRACTS = BASELINE_CONTRACTS
        started = time.perf_counter()
        head = asyncio.run(registry_fill.load(registry_url, workdir))
        print(
            f"registry filled through its application layer: {BASELINE_CONTRACTS:,} contracts, head {head:,} "
            f"({time.perf_counter() - started:.0f}s)",
            flush=True,
        )
        library = projection_runner_rate(registry_url)
        events, seconds, ours = asyncio.run(build_from_registry(registry_url, reporting_url))
        rate = events / seconds
        same = ours == runner_figures(registry_url)
        print(
            f"reporting projection on the same events (read from the registry's log in process + applied in batches "
            f"of {BATCH_PAGES} pages): {events:,} events in {seconds:.2f}s = {rate:,.0f} events/s; "
            f"same figures as the ProjectionRunner's view: {'yes' if same else 'NO'}",
            flush=True,
        )
        return library, events, rate, same
    finally:
        postgres.drop_database(registry_url)
        postgres.drop_database(reporting_url)


def wrk_script(workdir: Path) -> Path:
    codes = list(ningxia_regions())
    lua = workdir / "metrics.lua"
    lua.write_text(
        "local codes = {" + ",".join(f'"{c}"' for c in codes) + "}\n"
        f"local first, last = {YEARS[0]}, {YEARS[-1]}\n"
        f'wrk.headers["Authorization"] = "Bearer {ADMIN_KEY}"\n'
        "math.randomseed(os.time())\n"
        "-- every (region, year) request formatted once, so that wrk spends its CPU on sending, not on Lua\n"
        "local requests = {}\n"
        "for _, code in ipairs(codes) do\n"
        "  for year = first, last do\n"
        "    requests[#requests + 1] = wrk.format('GET', '/v1/regions/' .. code .. '/metrics?year=' .. year)\n"
        "  end\n"
        "end\n"
        "request = function()\n"
        "  return requests[math.random(#requests)]\n"
        "end\n",
        encoding="utf-8",
    )
    return lua


def run_wrk(url: str, script: Path, seconds: int) -> dict:
    out = subprocess.run(
        ["wrk", f"-t{WRK_THREADS}", f"-c{CLIENTS}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    def latency(pct: str) -> float:
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": latency("50"),
        "p90": latency("90"),
        "p99": latency("99"),
        "non_2xx": int(errors.group(1)) if errors else 0,
    }


def measure(label: str, env: dict, workdir: Path, script: Path) -> dict:
    service = start_service(f"bench-reporting-{label}", "tcr_reporting.bootstrap:create_app", env, workdir)
    try:
        url = service.url
        run_wrk(url, script, 3)  # warm-up
        return run_wrk(url, script, SECONDS)
    finally:
        service.stop()


def settle(url: str) -> None:
    """VACUUM ANALYZE and CHECKPOINT after the build, so that autovacuum and the checkpointer working off a
    million fresh writes do not run during the measurement (a long-running service is past that point)."""
    import psycopg

    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")
        try:
            conn.execute("CHECKPOINT")
        except psycopg.Error:  # needs the pg_checkpoint role or a superuser
            pass
    print(f"VACUUM ANALYZE + CHECKPOINT after the build: {time.perf_counter() - started:.1f}s", flush=True)


def kept_database() -> tuple[str, bool]:
    """The URL of the kept bench database, and whether it already holds the projection of EVENTS events."""
    import psycopg

    with psycopg.connect(postgres.ADMIN_DSN, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (KEPT_DATABASE,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{KEPT_DATABASE}"')
    url = f"{postgres.ADMIN_DSN.rsplit('/', 1)[0]}/{KEPT_DATABASE}"
    try:
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT position FROM feed_tracking WHERE feed = 'registry'").fetchone()
    except psycopg.Error:
        return url, False
    return url, bool(row) and row[0] >= EVENTS


def main() -> None:
    reuse = "--reuse" in sys.argv[1:]
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install -y wrk")
    problem = postgres.server_problem()
    if problem:
        sys.exit(problem)
    workdir = Path(tempfile.mkdtemp(prefix="tcr-bench-reporting-"))
    run = Run("reporting")
    build_figures = not reuse or not kept_database()[1]
    if build_figures:
        library, baseline_events, same_events_rate, same = baseline(workdir)
        library_name = f"eventsourcing ProjectionRunner, same run ({baseline_events:,} registry events)"
        run.add(
            figure(
                "eventsourcing ProjectionRunner: county turnover (registry events)",
                library,
                "events/s",
                events=baseline_events,
            )
        )
        run.add(
            figure(
                "reporting build on the same registry events (read + apply)",
                same_events_rate,
                "events/s",
                baseline=library,
                baseline_name=library_name,
                events=baseline_events,
                batch_pages=BATCH_PAGES,
                same_figures_as_runner=same,
            )
        )
    if reuse:
        url, built = kept_database()
        if built:
            print(f"reporting: reusing the projection of {EVENTS:,} events in {KEPT_DATABASE} (--reuse)")
    else:
        url, built = postgres.create_database("tcr_bench_reporting"), False
    try:
        database = Database(url)
        if not built:
            if reuse:
                postgres.drop_database(url)
                url, _ = kept_database()
                database = Database(url)
            print(
                f"reporting: building the projection from {EVENTS:,} generated registry events, fed straight "
                f"into the projection's apply path (batches of {BATCH_PAGES} pages of {PAGE}, figures + position "
                f"in one transaction each), PostgreSQL at 127.0.0.1:5432, {os.cpu_count()} cores",
                flush=True,
            )
            load_before = os.getloadavg()[0]
            applied, applying, wall = asyncio.run(fill(database))
            print(
                f"projection built: {applied:,} events, {applying:.1f}s in apply = {applied / applying:,.0f} "
                f"events/s ({wall:.1f}s wall clock with generating the events = {applied / wall:,.0f} events/s)"
            )
            run.add(
                figure(
                    f"reporting projection build ({applied:,} generated events)",
                    applied / applying,
                    "events/s",
                    at_least=GOAL_BUILD,
                    baseline=library,
                    baseline_name=library_name,
                    events=applied,
                    batch_pages=BATCH_PAGES,
                    wall_clock_events_per_s=round(applied / wall),
                    load_before=load_before,
                    load_after=os.getloadavg()[0],
                )
            )
            settle(url)
        script = wrk_script(workdir)
        base = {
            "TCR_ADMIN_KEY": ADMIN_KEY,
            "TCR_DATA_DIR": str(workdir),
            "TCR_REPORTING_DATABASE_URL": url,
            "TCR_LOG_LEVEL": "WARNING",
            # no publisher runs: the followers only report the feeds as unreachable
            "TCR_REGISTRY_URL": f"http://127.0.0.1:{free_port()}",
            "TCR_SUBSIDY_URL": f"http://127.0.0.1:{free_port()}",
        }
        print(
            f"GET /v1/regions/{{random of 28 codes}}/metrics?year={{random of {len(YEARS)}}}, {CLIENTS} "
            f"concurrent clients (wrk -t{WRK_THREADS}, 3s warm-up, then {SECONDS}s), uvicorn 1 worker",
            flush=True,
        )
        configurations = [
            ("default (route + answer cache)", base),
            ("answer cache off (reads figures)", {**base, "TCR_QUERY_CACHE": "0"}),
        ]
        results = []
        for label, env in configurations:
            load_before = os.getloadavg()[0]
            result = measure(label.split()[0].lower(), env, workdir, script)
            results.append((label, result, load_before, os.getloadavg()[0]))
    finally:
        if not reuse:
            postgres.drop_database(url)
    print()
    print(
        f"{'configuration':<40}{'req/s':>8}{'p50 ms':>8}{'p90 ms':>8}{'p99 ms':>8}{'non-2xx':>8}  load 1m before/after"
    )
    for label, r, before, after in results:
        print(
            f"{label:<40}{r['rps']:>8.0f}{r['p50']:>8.2f}{r['p90']:>8.2f}{r['p99']:>8.2f}{r['non_2xx']:>8}"
            f"  {before:.2f} / {after:.2f}"
        )
    print("goal: p99 < 20 ms at 32 clients with 1M events behind the figures")
    for label, r, before, after in results:
        run.add(
            figure(
                f"GET metrics p99, {CLIENTS} clients, {label}",
                r["p99"],
                "ms",
                at_most=20,
                requests_per_s=r["rps"],
                p50_ms=r["p50"],
                non_2xx=r["non_2xx"],
                load_before=before,
                load_after=after,
            )
        )
    print(f"bench-results: {run.write()}")
    print(
        f"load average during the run (other processes share these {os.cpu_count()} cores with the service and "
        f"wrk): {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )


if __name__ == "__main__":
    main()
