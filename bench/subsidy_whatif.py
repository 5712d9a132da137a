"""Benchmark of the policy what-if (issue 14): a synthetic registry history decided again under a candidate rule
book (import 20%, cap 3,000,000.00), against the live engine's catch-up rate on the same history.

1. BENCH_WHATIF_CONTRACTS (20,000: about the region's whole history) contracts over 2021-2025 as registry feed
   events (submit + certify; every 20th amended, every 50th revoked), built in memory.
2. The compact history is built from those pages (`DecisionHistory.extend`, as the service reads its feed), the
   rules in force are replayed and tallied once (the service keeps both), then the candidate is replayed, tallied
   and compared BENCH_WHATIF_RUNS (3) times: the figure an analyst waits for (median).
3. The live path on the same history: `AwardProjection` through `NotifyingSink` into a fresh database (PostgreSQL
   when reachable, else SQLite), pages of 1000 registry events, each page in one transaction: events/s.
4. With BENCH_WHATIF_LARGE=1 (or `--large`), the same for 1,000,000 contracts (simulation only: the live path's
   rate from step 3 gives its time by extrapolation, printed as such).
Prints figures (wall and CPU seconds, and the load average, since the machine is shared); asserts nothing.
Run: make bench (or python bench/subsidy_whatif.py [--large]).
"""

from __future__ import annotations

import asyncio
import copy
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tcr_shared.language.events.envelope import FeedEvent  # noqa: E402
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
CST = timezone(timedelta(hours=8))
START = datetime(2021, 1, 1, 9, tzinfo=CST)


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
            buyer=party("enterprise", 1000 + i % buyers, region=("640104", "640221", "640302", "640402")[i % 4]),
            seller=party("university" if i % 3 else "enterprise", 500_000 + i % sellers, region="640105"),
            intermediary=party("social_organisation", 900_000 + i % 13) if i % 10 == 0 else None,
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


def simulate(contracts: int) -> tuple[int, float]:
    history = DecisionHistory()

    def build() -> int:
        events = 0
        for page in feed(contracts):
            history.extend(page, page[-1].position)
            events += len(page)
        return events

    events, wall, cpu = timed(build)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"  history: {events:,} registry events -> {len(history.events):,} decision facts in {wall:.1f}s "
        f"(generating the synthetic feed included; peak RSS {rss:,.0f} MB)"
    )
    simulator = Simulator(default_rule_book(), history)
    book = candidate_book(candidate())
    before, wall, cpu = timed(lambda: tally(simulator.in_force().ledger, 2021, 2025))
    print(f"  rules in force, first replay and tally (both kept afterwards): {wall:.2f}s wall, {cpu:.2f}s CPU")
    walls, cpus = [], []
    for _ in range(RUNS):
        # as the service does (Simulations._decide): the in-force tallies are reused, the candidate is replayed
        (result, wall, cpu) = timed(
            lambda: compare_tallies(before, tally(simulator.candidate(book).ledger, 2021, 2025))
        )
        walls.append(wall)
        cpus.append(cpu)
    seconds = statistics.median(walls)
    print(
        f"  candidate (import 20%, cap 3,000,000.00) replayed and compared: median {seconds:.2f}s wall, "
        f"{statistics.median(cpus):.2f}s CPU over {RUNS} runs ({events / seconds:,.0f} registry events/s); "
        f"difference {result['summary']['difference']}, capped {result['summary']['capped']:,} "
        f"(in force {result['summary']['in_force_capped']:,})"
    )
    return events, seconds


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


def main() -> None:
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"what-if over {CONTRACTS:,} contracts:")
    events, seconds = simulate(CONTRACTS)
    rate, backend = asyncio.run(live_rate(CONTRACTS))
    print(
        f"  live projection on the same history ({backend}, pages of 1000): {rate:,.0f} events/s, "
        f"{events / rate:.1f}s; the what-if is {events / seconds / rate:.1f}x the live catch-up rate"
    )
    if "--large" in sys.argv or os.environ.get("BENCH_WHATIF_LARGE") == "1":
        print(f"what-if over {LARGE:,} contracts:")
        events, seconds = simulate(LARGE)
        print(f"  live catch-up at {rate:,.0f} events/s would take about {events / rate:,.0f}s (extrapolated)")
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
