"""Benchmark: batch-list import of 100,000 generated contracts into PostgreSQL (the same rules and commands as
POST /v1/contracts, through the registry's writer: `tcr-registry import`'s code path, file reading included),
against a raw COPY of the same CSV rows into a plain table of text columns, in the same run and database server.

Prints rows/s of each and the ratio (goal: >= 0.4x COPY), and writes bench-results/registry_import.json.
Run: python bench/registry_import.py (BENCH_IMPORT_ROWS, BENCH_IMPORT_CERTIFY=share of rows certified, 0..1,
BENCH_IMPORT_PLANNERS=planning processes, default: the import's own choice for this machine).
"""

from __future__ import annotations

import asyncio
import csv
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from results import Run, figure  # noqa: E402

from tcr_registry.adapters.imports.files import BatchList  # noqa: E402
from tcr_registry.adapters.imports.planning import planner_count  # noqa: E402
from tcr_registry.adapters.imports.service import import_file  # noqa: E402
from tcr_registry.adapters.imports.terms import read_terms  # noqa: E402
from tcr_registry.adapters.persistence import migrate  # noqa: E402
from tcr_registry.adapters.persistence.points_and_keys import SqlPointsAndKeys  # noqa: E402
from tcr_registry.adapters.persistence.writer import DiscardingWriter  # noqa: E402
from tcr_registry.application.actor import PointActor  # noqa: E402
from tcr_registry.application.imports import COLUMNS, ImportJob, ImportRun  # noqa: E402
from tcr_shared.language.identifiers import credit_code_with_check_digit  # noqa: E402
from tcr_shared.platform.database import Database  # noqa: E402
from tests.support import postgres  # noqa: E402

ROWS = int(os.environ.get("BENCH_IMPORT_ROWS", 100_000))
CERTIFY = float(os.environ.get("BENCH_IMPORT_CERTIFY", 1.0))
PLANNERS = int(os.environ.get("BENCH_IMPORT_PLANNERS", planner_count()))
GOAL = 0.4
PARTIES = 2_000  # sellers and buyers each, reused across rows as in a real year's list
SELLER_REGIONS = ["640104", "640105", "640106", "640121", "640181"]
BUYER_REGIONS = ["640181", "640202", "640302", "640402", "640502", "110108", "310115"]


def generate(path: Path, rows: int) -> None:
    """A batch list of `rows` valid contracts (one point, jurisdiction 6400), some certified."""
    sellers = [credit_code_with_check_digit(f"12{SELLER_REGIONS[n % 5]}{n:09d}") for n in range(PARTIES)]
    buyers = [credit_code_with_check_digit(f"91{BUYER_REGIONS[n % 7]}{n:09d}") for n in range(PARTIES)]
    names = [c.name for c in COLUMNS]
    certify_every = round(1 / CERTIFY) if CERTIFY else 0
    with open(path, "w", encoding="utf-8-sig", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(names)
        for n in range(rows):
            amount = 50_000 + (n * 7919) % 4_000_000
            certified = bool(certify_every) and n % certify_every == 0
            values = {
                "external_ref": f"NX-2025-{n:07d}",
                "title": f"技术合同 {n}",
                "category": "licence",
                "subcategory": "patent_ordinary",
                "signed_on": f"2025-{1 + n % 12:02d}-{1 + n % 28:02d}",
                "amount": f"{amount}.00",
                "technology_amount": f"{amount * 8 // 10}.50",
                "consideration": "money",
                "seller_name": f"卖方单位 {n % PARTIES}",
                "seller_kind": "university",
                "seller_credit_code": sellers[n % PARTIES],
                "seller_region": SELLER_REGIONS[n % PARTIES % 5],
                "buyer_name": f"买方企业 {n % PARTIES}",
                "buyer_kind": "enterprise",
                "buyer_credit_code": buyers[(n * 31) % PARTIES],
                "buyer_region": BUYER_REGIONS[(n * 31) % PARTIES % 7],
                "certify": "yes" if certified else "no",
                "certified_at": "2025-12-31T10:00:00+08:00" if certified else "",
            }
            writer.writerow([values.get(name, "") for name in names])


async def run_import(url: str, path: Path) -> tuple[float, dict]:
    database = Database(url)
    await asyncio.to_thread(migrate.upgrade, database)
    engine = database.async_engine()
    point = await SqlPointsAndKeys(engine).create_point("01", "基准测试登记点", "6400", created_by="bench")
    await engine.dispose()
    started, cpu = time.perf_counter(), time.process_time()
    job = await import_file(
        database,
        path,
        point.id,
        writer_batch=int(os.environ.get("BENCH_WRITER_BATCH", 512)),
        planners=PLANNERS,
    )
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert job.status == "done" and job.rejected == 0 and job.registered == ROWS, job
    return seconds, {"registered": job.registered, "certified": job.certified, "cpu_seconds": cpu}


class _NoJobs:
    async def create(self, job) -> None: ...

    async def update(self, job, errors) -> None: ...


async def run_rules_only(path: Path) -> float:
    """The same import with persistence off (the writer that stores nothing, as in bench/registry.py's baseline):
    what reading, the rules and building the events cost alone."""
    started = time.perf_counter()
    source = BatchList(path)
    job = ImportJob(id="bench", point_id="bench", filename=path.name, rows=source.rows)
    clock = lambda: datetime.now(UTC)  # noqa: E731
    await ImportRun(job, PointActor("bench", "6400", "01"), DiscardingWriter(), _NoJobs(), clock, read_terms).run(
        source
    )
    assert job.status == "done" and job.registered == ROWS, job
    return time.perf_counter() - started


def run_copy(url: str, path: Path) -> float:
    columns = ", ".join(f'"{c.name}" text' for c in COLUMNS)
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        conn.execute(f"CREATE TABLE batch_list_copy ({columns})")
        conn.commit()
        started = time.perf_counter()
        with conn.cursor() as cursor, open(path, "rb") as file:
            with cursor.copy("COPY batch_list_copy FROM STDIN WITH (FORMAT csv, HEADER true, ENCODING 'UTF8')") as copy:
                while block := file.read(1 << 20):
                    copy.write(block.removeprefix(b"\xef\xbb\xbf"))
        conn.commit()
        seconds = time.perf_counter() - started
        copied = conn.execute("SELECT count(*) FROM batch_list_copy").fetchone()[0]
    assert copied == ROWS, copied
    return seconds


def main() -> int:
    problem = postgres.server_problem()
    if problem:
        print(f"skipped: {problem}")
        return 1
    run = Run("registry_import")
    url = postgres.create_database("tcr_bench_import")
    try:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "batch.csv"
            generate(path, ROWS)
            copy_seconds = run_copy(url, path)
            import_seconds, counts = asyncio.run(run_import(url, path))
            rules_seconds = asyncio.run(run_rules_only(path))
    finally:
        postgres.drop_database(url)
    copy_rate, import_rate = ROWS / copy_seconds, ROWS / import_seconds
    events = counts["registered"] + 2 * counts["certified"]  # submitted; certified and the book's number
    print(f"batch-list import: {ROWS:,} contracts ({counts['certified']:,} certified), PostgreSQL")
    print(f"  raw COPY of the same rows   {copy_rate:>10,.0f} rows/s  ({copy_seconds:.2f} s)")
    print(
        f"  import (rules + events)     {import_rate:>10,.0f} rows/s  ({import_seconds:.2f} s, "
        f"{events / import_seconds:,.0f} events/s, {counts['cpu_seconds']:.1f} s CPU in this process, "
        f"{PLANNERS} planning processes)"
    )
    print(f"  import, persistence off     {ROWS / rules_seconds:>10,.0f} rows/s  (reading, rules, events: no store)")
    run.add(
        figure(
            f"batch-list import vs raw COPY ({ROWS:,} contracts)",
            import_rate,
            "rows/s",
            baseline=copy_rate,
            baseline_name="raw COPY of the same rows",
            min_ratio=GOAL,
            rows=ROWS,
            certified=counts["certified"],
            events_per_second=round(events / import_seconds),
            import_cpu_seconds=round(counts["cpu_seconds"], 2),
            planning_processes=PLANNERS,
            persistence_off_rows_per_second=round(ROWS / rules_seconds),
        )
    )
    run.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
