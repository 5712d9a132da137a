"""Benchmark of the policy what-if (issue 14): a synthetic registry history decided again under a candidate rule
book (import 20%, cap 3,000,000.00), against the live engine's catch-up rate on the same history.

1. BENCH_WHATIF_CONTRACTS (20,000: about the region's whole history) contracts over 2021-2025 as registry feed
   events (submit + certify; every 20th amended, every 50th revoked), built in memory.
2. The compact history is built from those pages (`DecisionHistory.extend`, as the service reads its feed), the
   rules in force are replayed and tallied once (the service keeps both), then the candidate is replayed, tallied
   and compared BENCH_WHATIF_RUNS (3) times: the figure an analyst waits for (median).
3. The live path on the same history: `AwardProjection` through `NotifyingSink` into a fresh database (PostgreSQL
   when reachable, else SQLite), pages of 1000 registry events, each page in one transaction: events/s.
4. The same simulation for BENCH_WHATIF_LARGE_CONTRACTS (1,000,000; 0 skips it) contracts, generated the same way
   (the time generating and compacting it takes is printed apart; it is not part of the simulation). The live
   catch-up's time on it is the rate of step 3 applied to its events (running it would take most of an hour).
Figures (CPU seconds, goal 1 s and 30 s; wall seconds, generation time and the live baseline as notes) go through
bench/results.py into bench-results/subsidy_whatif.json, with the load average (the machine is shared); asserts
nothing. Run: make bench (or python bench/subsidy_whatif.py).
"""

from __future__ import annotations

import asyncio
import copy
import functools
import os
import resource
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from results import Run, figure  # noqa: E402

from tcr_shared.language.events.envelope import FeedEvent  # noqa: E402
from tcr_shared.platform.collector import collector_paused  # noqa: E402
from tcr_shared.platform.database import Database  # noqa: E402
from tcr_subsidy.adapters.feeds import NotifyingSink  # noqa: E402
from tcr_subsidy.adapters.persistence import migrate  # noqa: E402
from tcr_subsidy.adapters.rule_files import default_rule_book  # noqa: E402
from tcr_subsidy.application.projection import AwardProjection  # noqa: E402
from tcr_subsidy.application.simulation import (  # noqa: E402
    DecisionHistory,
    Simulator,
    candidate_book,
    compare_tallies,
    tally,
)
from tcr_subsidy.domain.decision import Engine  # noqa: E402
from tests.subsidy.history import party, terms  # noqa: E402
from tests.support import postgres  # noqa: E402

CONTRACTS = int(os.environ.get("BENCH_WHATIF_CONTRACTS", 20_000))
LARGE = int(os.environ.get("BENCH_WHATIF_LARGE_CONTRACTS", 1_000_000))
RUNS = int(os.environ.get("BENCH_WHATIF_RUNS", 3))
LARGE_RUNS = int(os.environ.get("BENCH_WHATIF_LARGE_RUNS", 2))
CST = timezone(timedelta(hours=8))
START = datetime(2021, 1, 1, 9, tzinfo=CST)


# The same party recurs contract after contract (as in the registry): made once (its check digit computed once), and
# shared read-only by every contract that names it, which cuts generating 1,000,000 contracts by a good part.
party_of = functools.lru_cache(maxsize=None)(party)


def feed(contracts: int) -> Iterator[list[FeedEvent]]:
    """The registry feed of `contracts` contracts, in pages of 1000 events."""
    buyers, sellers = max(997, contracts // 20), max(211, contracts // 100)
    minutes = 5 * 365 * 24 * 60 // contracts or 1  # spread over 2021-2025
    page: list[FeedEvent] = []
    position = 0

    def add(type_: str, cid: str, data: dict, moment: datetime) -> None:
        nonlocal position
        position += 1
        page.append(
            FeedEvent.model_construct(
                id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"whatif/{position}")),
                source="/tcr/registry",
                type=f"tcr.registry.contract.{type_}.v1",
                time=moment.isoformat(),
                subject=cid,
                position=position,
                data={"contract_id": cid, **data},
            )
        )

    for i in range(contracts):
        t = terms(
            amount=f"{100000 + (i * 7919) % 9_000_000}.{i % 100:02d}",
            technology_amount=f"{50000 + (i * 104729) % 900_000}.00",
            buyer=party_of("enterprise", 1000 + i % buyers, region=("640104", "640221", "640302", "640402")[i % 4]),
            seller=party_of("university" if i % 3 else "enterprise", 500_000 + i % sellers, region="640105"),
            intermediary=party_of("social_organisation", 900_000 + i % 13) if i % 10 == 0 else None,
            result_id=f"ZL{i % 501}",
        )
        cid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"whatif-contract/{i}"))
        at = START + timedelta(minutes=i * minutes)
        add("submitted", cid, {"status": "submitted", "terms": t}, at)
        certified = {"status": "certified", "terms": t, "certified_at": at.isoformat(), "policy_year": at.year}
        add("certified", cid, {**certified, "registration_number": f"{at.year}640101{i % 999999:06d}"}, at)
        if i % 20 == 0:
            amended = dict(copy.deepcopy(t), amount=f"{200000 + i}.00", technology_amount="100000.00")
            add("amended", cid, {"status": "certified", "terms": amended, "previous_terms": t, "policy_year": None}, at)
        if i % 50 == 0:
            add("revoked", cid, {"status": "revoked", "terms": t, "reason": "bench"}, at)
        if len(page) >= 1000:
            yield page
            page = []
    if page:
        yield page


def candidate() -> dict:
    rs = default_rule_book().rule_sets[0].as_dict()
    imports = next(p for p in rs["programmes"] if p["programme"] == "import")
    imports["rate"], imports["cap"] = "0.20", "3000000.00"
    return dict(rs, id="what-if")


def timed(work):
    wall, cpu = time.perf_counter(), time.process_time()
    result = work()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def simulate(contracts: int, runs: int = RUNS) -> dict:
    """The history built from the synthetic feed (timed apart), the rules in force replayed and tallied once (as
    the service keeps them), then the candidate replayed, tallied and compared RUNS times."""
    history = DecisionHistory()

    def build() -> int:
        events = 0
        for page in feed(contracts):
            history.extend(page, page[-1].position)
            events += len(page)
        return events

    events, build_wall, build_cpu = timed(build)
    print(
        f"  history: {events:,} registry events -> {len(history.events):,} decision facts; generating the synthetic "
        f"feed and compacting it took {build_wall:.1f}s wall, {build_cpu:.1f}s CPU (not part of the simulation)"
    )
    simulator = Simulator(default_rule_book(), history)
    book = candidate_book(candidate())
    before, wall, cpu = timed(lambda: tally(simulator.in_force().ledger, 2021, 2025))
    print(f"  rules in force, first replay and tally (both kept afterwards): {wall:.2f}s wall, {cpu:.2f}s CPU")
    walls, cpus = [], []
    for _ in range(runs):
        # as the service does (Simulations._decide): the in-force tallies are reused, the candidate is replayed
        def run():
            with collector_paused():
                return compare_tallies(before, tally(simulator.candidate(book).ledger, 2021, 2025))

        (result, wall, cpu) = timed(run)
        walls.append(wall)
        cpus.append(cpu)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    measured = {
        "events": events,
        "facts": len(history.events),
        "cpu": statistics.median(cpus),
        "wall": statistics.median(walls),
        "build_wall": build_wall,
        "in_force_cpu": cpu,
        "rss_mb": rss,
        "difference": result["summary"]["difference"],
        "capped": result["summary"]["capped"],
    }
    print(
        f"  candidate (import 20%, cap 3,000,000.00) replayed, tallied and compared: median {measured['cpu']:.2f}s "
        f"CPU, {measured['wall']:.2f}s wall over {runs} runs; difference {measured['difference']}, capped "
        f"{measured['capped']:,} (in force {result['summary']['in_force_capped']:,}); peak RSS {rss:,.0f} MB"
    )
    return measured


async def live_rate(contracts: int) -> tuple[float, str]:
    problem = postgres.server_problem()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'live.db'}" if problem else postgres.create_database("tcr_bench_whatif")
        database = Database(url)
        migrate.upgrade(database)
        db = database.async_engine()
        try:
            sink = NotifyingSink(db, AwardProjection(Engine(default_rule_book())), lambda: None)
            started, events = time.perf_counter(), 0
            for page in feed(contracts):
                await sink.apply(page, page[-1].position)
                events += len(page)
            return events / (time.perf_counter() - started), "SQLite" if problem else "PostgreSQL"
        finally:
            await db.dispose()
            if not problem:
                postgres.drop_database(url)


def add_figure(run: Run, contracts: int, measured: dict, goal_seconds: float, rate: float, backend: str) -> None:
    live_ms = measured["events"] / rate * 1000
    run.add(
        figure(
            f"what-if, {contracts:,} contracts, one candidate, CPU",
            measured["cpu"] * 1000,
            "ms",
            at_most=goal_seconds * 1000,
            baseline=live_ms,
            baseline_name=f"live projection catch-up on the same history ({backend})",
            registry_events=measured["events"],
            decision_facts=measured["facts"],
            wall_seconds=round(measured["wall"], 2),
            history_generation_seconds=round(measured["build_wall"], 1),
            live_catch_up_events_per_s=round(rate),
            peak_rss_mb=round(measured["rss_mb"]),
            difference=measured["difference"],
            capped=measured["capped"],
        )
    )


def main() -> None:
    run = Run("subsidy_whatif")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"what-if over {CONTRACTS:,} contracts:")
    measured = simulate(CONTRACTS)
    rate, backend = asyncio.run(live_rate(CONTRACTS))
    live_seconds = measured["events"] / rate
    print(
        f"  live projection on the same history ({backend}, pages of 1000): {rate:,.0f} events/s, "
        f"{live_seconds:.1f}s; the what-if takes {measured['cpu'] / live_seconds:.3f}x that"
    )
    add_figure(run, CONTRACTS, measured, 1.0, rate, backend)
    if LARGE:
        print(f"what-if over {LARGE:,} contracts:")
        large = simulate(LARGE, LARGE_RUNS)
        # The live catch-up of the large history is not run (at its rate it would take most of an hour): its time
        # is the rate measured above on the same generator's history, applied to the large one's events.
        print(f"  live catch-up at {rate:,.0f} events/s would take about {large['events'] / rate:,.0f}s")
        add_figure(run, LARGE, large, 30.0, rate, backend)
    run.write()


if __name__ == "__main__":
    main()
