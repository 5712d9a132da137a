"""Batch-list import in memory: reading headers and rows, and the command that registers many rows at once while
keeping each row all or nothing (tests.registry.memory's fake unit of work; no database, no HTTP)."""

from __future__ import annotations

import asyncio
import gc
from dataclasses import replace
from datetime import timedelta

import pytest

from tcr_registry.adapters.imports.terms import read_terms
from tcr_registry.adapters.persistence.writer import DiscardingWriter
from tcr_registry.application.actor import PointActor
from tcr_registry.application.imports import (
    ALREADY,
    CERTIFIED,
    COLUMNS,
    REGISTERED,
    ImportFileError,
    ImportJob,
    ImportRun,
    RowPlan,
    RowRefused,
    header_columns,
    plan_row,
    register_rows,
    row_contract_id,
)
from tcr_registry.domain.contract import Contract
from tcr_registry.domain.errors import InvalidTerms, OutsideJurisdiction
from tcr_registry.domain.registration_book import RegistrationBook
from tcr_shared.platform.collector import FEWER_COLLECTIONS
from tests.registry.memory import NOW, FakeRegistry, point, terms
from tests.registry.test_import import row


def plan(actor, ref: str, certify: bool = False, **changes) -> RowPlan:
    row_terms = terms(**changes)
    return RowPlan(0, row_contract_id(actor.point_id, ref, row_terms), row_terms, certify, None, None)


def test_headers_in_english_chinese_or_both():
    header = [c.name for c in COLUMNS[:5]] + ["成交额", "技术交易额 (technology_amount)", ""]
    header += ["Seller_Name", "卖方类型", "买方名称（buyer_name）", "buyer_kind"]
    columns = header_columns(header)
    assert columns[:7] == [c.name for c in COLUMNS[:7]] and columns[7] is None
    assert columns[8:] == ["seller_name", "seller_kind", "buyer_name", "buyer_kind"]


def test_an_unknown_or_repeated_header_or_a_missing_column_refuses_the_file():
    with pytest.raises(ImportFileError) as refused:
        header_columns(["title", "合同名称", "categroy"])
    fields = [field for field, _ in refused.value.errors]
    assert fields[:2] == ["header.2", "header.3"] and "amount" in fields and "title" not in fields[2:]


def test_a_row_reads_as_the_api_reads_a_body():
    values = {
        "title": " 合同 ",
        "category": "技术许可",
        "subcategory": "patent_ordinary",
        "signed_on": "2025/03/01",
        "amount": "900000.00",
        "technology_amount": "800000.00",
        "seller_name": "甲",
        "seller_kind": "university",
        "seller_credit_code": "12640000mA0000001x",
        "buyer_name": "乙",
        "buyer_kind": "enterprise",
        "certify": "是",
        "certified_at": "2025-03-10",
    }
    row = plan_row("p1", 2, values, read_terms)
    assert (row.terms.title, row.terms.category, str(row.terms.signed_on)) == ("合同", "licence", "2025-03-01")
    assert row.terms.consideration == "money" and row.terms.intermediary is None
    assert row.terms.seller.credit_code == "12640000MA0000001X"
    assert row.certify and row.certified_at.isoformat() == "2025-03-10T00:00:00+08:00"
    # Without an external_ref the row is named by its terms: the same terms, the same contract.
    assert (
        row.contract_id
        == plan_row("p1", 9, {**values, "title": "合同", "certify": "", "certified_at": ""}, read_terms).contract_id
    )
    assert row.contract_id != plan_row("p2", 2, values, read_terms).contract_id

    with pytest.raises(RowRefused) as refused:
        plan_row("p1", 3, {**values, "amount": "9e5", "signed_on": "", "certify": "maybe", "title": ""}, read_terms)
    assert [field for field, _ in refused.value.errors] == ["title", "signed_on", "amount", "certify"]


def test_many_rows_in_one_command_each_all_or_nothing():
    registry, actor = FakeRegistry(), point("6401")
    good = plan(actor, "1", certify=True)
    late = replace(plan(actor, "2", certify=True), certified_at=NOW + timedelta(days=1))  # refused at certify
    outside = plan(actor, "3", seller_region="640205", buyer_region="640205")
    plain = plan(actor, "4")
    again = plan(actor, "1", certify=True)
    last = plan(actor, "5", certify=True)

    outcomes = registry.run(register_rows([good, late, outside, plain, again, last], actor, NOW))

    assert outcomes[0] == CERTIFIED and outcomes[3] == REGISTERED and outcomes[4] == ALREADY
    assert isinstance(outcomes[1], InvalidTerms) and isinstance(outcomes[2], OutsideJurisdiction)
    assert outcomes[5] == CERTIFIED
    contracts = [a for a in registry.aggregates.values() if isinstance(a, Contract)]
    assert sorted(str(c.id) for c in contracts) == sorted(str(p.contract_id) for p in (good, plain, last))
    assert [registry.aggregates[p.contract_id].registration_number[-6:] for p in (good, last)] == ["000001", "000002"]
    book = next(a for a in registry.aggregates.values() if isinstance(a, RegistrationBook))
    assert book.last_sequence == 2
    assert [type(e).__name__ for e in registry.log].count("Submitted") == 3


async def test_an_import_runs_with_fewer_collections_and_restores_the_thresholds_after():
    """Two imports overlapping (as in the service): the collector's thresholds are raised while either runs, and
    the process's own come back only when the last one ends, also when an import fails."""

    class NoJobs:
        async def update(self, job, errors) -> None: ...

    seen: list[tuple[int, int, int]] = []
    release = asyncio.Event()

    class Watching(DiscardingWriter):
        async def execute(self, command, receipt=None):
            seen.append(gc.get_threshold())
            await release.wait()
            return await super().execute(command, receipt)

    class Failing(DiscardingWriter):
        async def execute(self, command, receipt=None):
            seen.append(gc.get_threshold())
            raise OSError("the store failed")

    def run(runner) -> ImportRun:
        job = ImportJob(id="j", point_id="p", filename="f.csv", rows=1)
        actor = PointActor("p", "6401", "01")
        return ImportRun(job, actor, runner, NoJobs(), lambda: NOW, read_terms)

    before = gc.get_threshold()
    assert before != FEWER_COLLECTIONS
    first = asyncio.create_task(run(Watching()).run([(2, row("G-1"))]))
    while not seen:
        await asyncio.sleep(0)
    failed = await run(Failing()).run([(2, row("G-2"))])
    assert failed.status == "failed"
    assert gc.get_threshold() == FEWER_COLLECTIONS  # the first import still runs
    release.set()
    assert (await first).status == "done"
    assert seen == [FEWER_COLLECTIONS, FEWER_COLLECTIONS]
    assert gc.get_threshold() == before
