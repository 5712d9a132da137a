"""A large batch list is planned in worker processes (tcr_registry.adapters.imports.planning): the outcome is the
in-process import's, row for row. The rows reach the writer in file order whoever planned them, so registration
numbers follow the file and a certification earlier than the row before it is refused exactly as in process; and
refused rows keep their row number, field and reason across the process boundary."""

from __future__ import annotations

import os
from datetime import timedelta

from tcr_registry.adapters.imports.files import BatchList
from tcr_registry.adapters.imports.planning import PLAN_IN_WORKERS_FROM, row_planners
from tcr_registry.adapters.imports.terms import read_terms
from tcr_registry.adapters.persistence.writer import Committed
from tcr_registry.application.imports import ImportJob, ImportRun, RowError
from tcr_registry.domain.contract import Contract
from tests.registry.memory import NOW, FakeRegistry, point
from tests.registry.test_import import csv_file, row


class MemoryRunner:
    """The writer's CommandRunner over tests.registry.memory: commands run one after another, in arrival order."""

    def __init__(self) -> None:
        self.registry = FakeRegistry()

    async def execute(self, command, receipt=None):
        return Committed(self.registry.run(command), None)


class KeptJobs:
    def __init__(self) -> None:
        self.errors: list[RowError] = []

    async def update(self, job, errors) -> None:
        self.errors += errors


def batch_list() -> list[tuple[int, dict[str, str]]]:
    """Certified rows one minute apart, so that any row reaching the writer out of file order would be refused as
    back-dated; with rows refused by the schema, by the domain and by the order rule among them."""
    rows = []
    for n in range(60):
        at = (NOW - timedelta(days=1) + timedelta(minutes=n)).isoformat()
        values = row(f"P-{n}", certify="yes", certified_at=at)
        if n % 11 == 3:
            values["amount"] = "9e5"  # the API's schema refuses it
        elif n % 11 == 7:
            values["technology_amount"] = "990000.00"  # the domain refuses it: more than the amount
        elif n == 41:
            values["certified_at"] = (NOW - timedelta(days=2)).isoformat()  # earlier than row 41's predecessor
        rows.append((n + 2, values))
    return rows


def batch_file(folder) -> BatchList:
    """The same rows as a CSV file: its lines cross to the planning processes as raw cells (files.Line)."""
    path = folder / "batch.csv"
    path.write_bytes(csv_file([values for _row, values in batch_list()]))
    return BatchList(path)


async def run(planner, source=None) -> tuple[ImportJob, list[RowError], MemoryRunner]:
    actor = point("6401", point_id="planned")
    runner, jobs = MemoryRunner(), KeptJobs()
    job = ImportJob(id="j", point_id=actor.point_id, filename="f.csv", rows=60)
    await ImportRun(job, actor, runner, jobs, lambda: NOW, read_terms, chunk=4, planner=planner).run(
        source or batch_list()
    )
    return job, jobs.errors, runner


async def test_rows_planned_in_worker_processes_import_as_in_process(tmp_path):
    expected_job, expected_errors, expected = await run(None)
    async with row_planners(PLAN_IN_WORKERS_FROM, workers=2) as planner:
        assert planner is not None
        assert planner.started.result(timeout=120) != os.getpid()  # the plans below come from other processes
        job, errors, imported = await run(planner)
        from_file = await run(planner, batch_file(tmp_path))
    assert from_file[:2] == (job, errors)

    assert (job.status, job.registered, job.certified, job.rejected) == ("done", 48, 48, 12)
    assert (job.registered, job.certified, job.rejected) == (
        expected_job.registered,
        expected_job.certified,
        expected_job.rejected,
    )
    assert errors == expected_errors
    assert {e.field for e in errors} == {"amount", "technology_amount", "certified_at"}
    assert [e.row for e in errors if e.field == "certified_at"] == [43]
    numbers = [
        (a.terms.title, a.registration_number) for a in imported.registry.aggregates.values() if isinstance(a, Contract)
    ]
    assert sorted(numbers, key=lambda n: n[1]) == sorted(numbers, key=lambda n: int(n[0].split("P-")[1]))
    assert numbers == [
        (a.terms.title, a.registration_number) for a in expected.registry.aggregates.values() if isinstance(a, Contract)
    ]


async def test_a_small_file_or_a_machine_without_cores_to_spare_plans_in_process():
    async with row_planners(PLAN_IN_WORKERS_FROM - 1, workers=2) as planner:
        assert planner is None
    async with row_planners(PLAN_IN_WORKERS_FROM * 10, workers=0) as planner:
        assert planner is None
