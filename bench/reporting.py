"""Benchmark: GET /v1/regions/{code}/metrics at 32 concurrent clients with 1M events behind the figures.

How the state is built: 1,000,000 generated registry feed events (submissions, certifications, amendments,
revocations over ten policy years, all 22 counties) are fed straight into the projection's real apply path
(`registry_sink(engine).apply(page, position)`: the same SqlProjectionSink transaction per page of 1,000 that
the follower uses), not through the registry's HTTP API, which would take far longer to fill. The reporting
service then runs as a real uvicorn process on that PostgreSQL database, and wrk (Debian package `wrk`) drives
random (region, year) metrics requests at it (each request formatted once in the Lua script, so wrk's own CPU
goes to sending): first in the normal configuration (the FastAPI route answering from the per-version answer
cache), then with the cache off (every request reads the figures table). Each: a fresh uvicorn process, 3 s of warm-up, then the measured run;
the 1-minute load average before and after each is printed, since the machine may be shared.

Prints the figures; asserts nothing. Run: make bench, or python bench/reporting.py (BENCH_EVENTS, BENCH_SECONDS,
BENCH_CLIENTS, BENCH_WRK_THREADS override the defaults). By default the database is built fresh and dropped
afterwards; `--reuse` (for iterating on the service) keeps it as `tcr_bench_reporting_kept` and, when it already
holds the projection of BENCH_EVENTS events, measures it again without rebuilding.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

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


async def fill(database: Database) -> tuple[int, float]:
    await asyncio.to_thread(upgrade, database)
    engine = database.async_engine()
    sink = registry_sink(engine)
    started = time.perf_counter()
    applied = 0
    try:
        for page in generate(EVENTS):
            await sink.apply(page, page[-1].position)
            applied += len(page)
            if applied % 100_000 < PAGE:
                rate = applied / (time.perf_counter() - started)
                print(f"  {applied:>9,} events applied ({rate:,.0f} events/s)", flush=True)
    finally:
        await engine.dispose()
    return applied, time.perf_counter() - started


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
                f"into the projection's apply path (pages of {PAGE}, figures + position in one transaction "
                f"each), PostgreSQL at 127.0.0.1:5432, {os.cpu_count()} cores",
                flush=True,
            )
            applied, seconds = asyncio.run(fill(database))
            print(f"projection built: {applied:,} events in {seconds:.1f}s = {applied / seconds:,.0f} events/s")
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
    print(
        f"load average during the run (other processes share these {os.cpu_count()} cores with the service and "
        f"wrk): {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )


if __name__ == "__main__":
    main()
