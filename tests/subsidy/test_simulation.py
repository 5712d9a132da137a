"""Policy what-if (issue 14), in process: simulating the rules in force reproduces the live awards to the fen on
random histories (against the live projection's own database rows), a candidate changes what it should and only
that, and bad candidates are refused naming the field."""

from __future__ import annotations

import asyncio
import copy
from datetime import datetime
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from tcr_shared.language.events.envelope import FeedPage
from tcr_shared.platform.database import Database
from tcr_subsidy.adapters.feeds import NotifyingSink
from tcr_subsidy.adapters.persistence import migrate
from tcr_subsidy.adapters.persistence import tables as t
from tcr_subsidy.adapters.persistence.queries import Queries
from tcr_subsidy.adapters.persistence.simulations import SqlSimulationStore
from tcr_subsidy.adapters.rule_files import default_rule_book
from tcr_subsidy.adapters.simulation_exports import simulation_csv, simulation_xlsx
from tcr_subsidy.application.projection import registry_event
from tcr_subsidy.application.simulation import (
    CandidateError,
    DecisionHistory,
    Simulations,
    Simulator,
    candidate_book,
    compare,
)
from tcr_subsidy.domain.decision import Engine, MalformedEvent
from tcr_subsidy.domain.ledger import Ledger
from tests.subsidy.history import CST, History, party, reference, terms
from tests.subsidy.test_properties import build, operations


def in_force_candidate() -> list[dict]:
    """The rule sets in force, in the shape GET /v1/programmes gives them."""
    return [rs.as_dict() for rs in default_rule_book().rule_sets]


def awards_of(ledger: Ledger) -> dict[tuple[str, str, str], tuple[Decimal, str]]:
    return {(a.contract_id, a.programme, a.beneficiary): (a.award, a.status) for a in ledger.awards.values()}


def history_in_pages(h: History, sizes: list[int]) -> list[tuple[list, int]]:
    pages, i = [], 0
    while i < len(h.events):
        step = sizes[(i // 3) % len(sizes)]
        page = h.events[i : i + step]
        pages.append((page, page[-1].position))
        i += step
    return pages


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=operations, sizes=st.lists(st.integers(1, 9), min_size=1, max_size=4))
def test_the_rules_in_force_replayed_in_memory_decide_as_the_live_engine(ops, sizes):
    h = build(ops)
    live_engine, live = Engine(default_rule_book()), Ledger()
    for event in h.events:
        live_engine.apply(live, registry_event(event))
    simulator = Simulator(default_rule_book())
    for page, position in history_in_pages(h, sizes):  # the history grows page by page, as the feed is read
        simulator.history.extend(page, position)
        simulator.in_force()  # the in-force replay is extended incrementally
    in_force = simulator.in_force().ledger
    candidate = simulator.candidate(candidate_book(in_force_candidate())).ledger
    assert awards_of(in_force) == awards_of(live) == awards_of(candidate)
    assert {k: (u.used, u.programme) for k, u in candidate.caps.items()} == {
        k: (u.used, u.programme) for k, u in live.caps.items()
    }
    assert {k: v for k, (v, _s) in awards_of(candidate).items()} == reference(h.events)
    result = compare(in_force, candidate, 2020, 2030)
    assert all(row["difference"] == "0.00" for row in result["totals"] + result["regions"])
    assert result["beneficiaries"] == []


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(ops=operations)
def test_simulating_the_rules_in_force_reproduces_the_live_projection_to_the_fen(tmp_path_factory, ops):
    """Against the live path itself: the projection's pages written to its database (SQLite here; the e2e test
    covers PostgreSQL), read back, compared award by award with the simulation's in-force figures."""
    h = build(ops)
    database = Database(f"sqlite:///{tmp_path_factory.mktemp('sim') / 'subsidy.db'}")
    migrate.upgrade(database)

    async def run() -> None:
        db = database.async_engine()
        try:
            from tcr_subsidy.application.projection import AwardProjection

            sink = NotifyingSink(db, AwardProjection(Engine(default_rule_book())), lambda: None)
            for page, position in history_in_pages(h, [7]):
                await sink.apply(page, position)
            async with db.connect() as conn:
                rows = (await conn.execute(select(t.awards))).mappings().all()
            live = {
                (r["contract_id"], r["programme"], r["beneficiary"]): (Decimal(r["award_fen"]).scaleb(-2), r["status"])
                for r in rows
            }
            before = await Queries(db).snapshot()
            simulations = Simulations(default_rule_book(), FeedOf(h), SqlSimulationStore(db))
            simulation = await simulations.run(in_force_candidate(), 2020, 2030, created_by="test", in_thread=False)
            assert awards_of(simulations.simulator.in_force().ledger) == live
            assert await Queries(db).snapshot() == before  # the live ledger and award feed are untouched
            assert all(r["difference"] == "0.00" for r in simulation["result"]["totals"])
            assert await simulations.get(simulation["id"]) == simulation  # kept, read back the same
        finally:
            await db.dispose()

    asyncio.run(run())


class FeedOf:
    """The registry feed of a hand-made history, served in pages (the edge of the world: the registry)."""

    def __init__(self, h: History) -> None:
        self.events = h.events

    async def page(self, after: int, *, limit: int | None = None) -> FeedPage:
        found = [e for e in self.events if e.position > after][: limit or 1000]
        head = self.events[-1].position if self.events else 0
        return FeedPage(events=found, next_after=found[-1].position if found else after, head=head)


def at(month: int, d: int, year: int = 2025) -> datetime:
    return datetime(year, month, d, 10, tzinfo=CST)


def twenty_percent_and_three_million() -> dict:
    candidate = copy.deepcopy(in_force_candidate()[0])
    candidate["id"] = "what-if-2025"
    imports = next(p for p in candidate["programmes"] if p["programme"] == "import")
    imports["rate"], imports["cap"] = "0.20", "3000000.00"
    return candidate


def test_twenty_percent_import_and_a_three_million_cap_change_what_they_should():
    h = History()
    a = party("enterprise", 1, region="640104")  # Xingqing, Yinchuan
    seller = party("university", 2, region="640105")
    for amount, day in (("9000000.00", 1), ("6000000.00", 2), ("2000000.00", 3)):
        h.certified(
            terms(amount=amount, technology_amount="100000.00", buyer=a, seller=seller, result_id="ZL1"), at(3, day)
        )
    b = party("enterprise", 3, region="640221")  # Pingluo, Shizuishan: small, never capped
    h.certified(terms(amount="1000000.00", technology_amount="100000.00", buyer=b, seller=seller), at(4, 1))
    h.certified(terms(amount="4000000.00", technology_amount="100000.00", buyer=a, seller=seller), at(4, 2, 2024))
    simulator = Simulator(default_rule_book())
    simulator.history.extend(h.events, h.events[-1].position)
    before = simulator.in_force().ledger
    after = simulator.candidate(candidate_book(twenty_percent_and_three_million())).ledger
    result = compare(before, after, 2025, 2025)
    totals = {row["programme"]: row for row in result["totals"]}
    # in force: A 2.7M + 1.8M + 0.5M (capped at 5M); B 300k. Candidate: A 1.8M + 1.2M + 0.00 (3M used up); B 200k
    assert totals["import"] | {} == {
        "policy_year": 2025,
        "programme": "import",
        "in_force": "5300000.00",
        "candidate": "3200000.00",
        "difference": "-2100000.00",
        "awards": 4,
        "beneficiaries": 2,
        "capped": 1,
        "in_force_awards": 4,
        "in_force_beneficiaries": 2,
        "in_force_capped": 1,
    }
    assert totals["export_institution"]["difference"] == "0.00"  # only the import programme changed
    regions = {(r["programme"], r["region"]): r for r in result["regions"]}
    assert regions[("import", "640104")]["difference"] == "-2000000.00"
    assert regions[("import", "640221")]["difference"] == "-100000.00"
    assert regions[("import", "640100")]["difference"] == "-2000000.00"  # Yinchuan, the prefecture
    assert regions[("import", "640200")]["candidate"] == "200000.00"  # Shizuishan
    assert [(b["beneficiary"], b["difference"]) for b in result["beneficiaries"]] == [
        (a["credit_code"], "-2000000.00"),
        (b["credit_code"], "-100000.00"),
    ]
    assert [r["policy_year"] for r in compare(before, after, 2024, 2024)["totals"]] == [2024, 2024]
    assert compare(before, after, 2024, 2024)["totals"][0]["candidate"] == "800000.00"  # 20% of 4M, under 3M


def test_hospitals_under_clause_five_are_paid_only_in_the_candidate():
    h = History()
    hospital = party("public_institution", 7, region="640302")
    h.certified(terms(amount="200000.00", seller=hospital, buyer=party("enterprise", 8, region="640104")), at(5, 1))
    candidate = copy.deepcopy(in_force_candidate()[0])
    institution = next(p for p in candidate["programmes"] if p["programme"] == "export_institution")
    institution["beneficiary_kinds"].append("public_institution")
    simulator = Simulator(default_rule_book())
    simulator.history.extend(h.events, h.events[-1].position)
    result = compare(simulator.in_force().ledger, simulator.candidate(candidate_book(candidate)).ledger, 2025, 2025)
    row = next(r for r in result["totals"] if r["programme"] == "export_institution")
    assert (row["in_force"], row["candidate"], row["awards"], row["in_force_awards"]) == ("0.00", "10000.00", 1, 0)
    assert result["beneficiaries"][0]["beneficiary"] == hospital["credit_code"]


def test_a_kept_simulation_downloads_as_csv_and_one_sheet_a_table():
    from io import BytesIO

    from openpyxl import load_workbook

    h = History()
    h.certified(terms(amount="9000000.00", buyer=party("enterprise", 1)), at(3, 1))
    simulations = Simulations(default_rule_book(), FeedOf(h))
    simulation = asyncio.run(
        simulations.run(twenty_percent_and_three_million(), 2025, 2025, created_by="t", in_thread=False)
    )
    text = simulation_csv(simulation).decode("utf-8-sig").splitlines()
    assert text[0].startswith("table,policy_year,programme,region,region_name,beneficiary,name,kind,in_force,candidate")
    assert any(line.startswith("regions,2025,import,640104,兴庆区") for line in text)
    book = load_workbook(BytesIO(simulation_xlsx(simulation)))
    assert book.sheetnames == ["合计 Totals", "地区 Regions", "受益方 Beneficiaries"]
    totals = book["合计 Totals"]
    assert [totals.cell(row=5, column=c).value for c in (1, 2, 3, 4, 5)] == [2025, "import", 2700000, 1800000, -900000]


@pytest.mark.parametrize(
    "change,field",
    [
        (lambda c: c["programmes"][0].update(rate="1.5"), "rules.programmes[0].rate"),
        (lambda c: c["programmes"][1].update(cap="-1.00"), "rules.programmes[1].cap"),
        (
            lambda c: c["programmes"][2]["beneficiary_kinds"].append("hospital"),
            "rules.programmes[2].beneficiary_kinds[2]",
        ),
        (lambda c: c["programmes"][3].update(cap_scope="month"), "rules.programmes[3].cap_scope"),
        (lambda c: c["programmes"][0].update(rate=0.2), "rules.programmes[0].rate"),
        (lambda c: c.update(eligible_categories=["licence", "lease"]), "rules.eligible_categories[1]"),
        (lambda c: c.update(effective_from="2020-13-01"), "rules.effective_from"),
        (lambda c: c.update(effective_until="2030-01-01"), "rules.effective_until"),
        (lambda c: c.pop("programmes"), "rules.programmes"),
    ],
)
def test_bad_candidates_name_the_field(change, field):
    candidate = dict(in_force_candidate()[0], effective_until=None, in_force=True, future=False)
    candidate = copy.deepcopy(candidate)
    candidate_book(copy.deepcopy(candidate))  # as fetched: accepted
    change(candidate)
    with pytest.raises(CandidateError) as refused:
        candidate_book(candidate)
    assert [e["field"] for e in refused.value.errors] == [field]


def test_overlapping_effective_dates_are_refused():
    first = in_force_candidate()[0]
    second = dict(copy.deepcopy(first), id="ningxia-2020-bis")
    with pytest.raises(CandidateError) as refused:
        candidate_book([first, second])
    assert refused.value.errors[0]["field"] == "rules[1].effective_from"
    later = dict(copy.deepcopy(first), id="ningxia-2026", effective_from="2026-01-01")
    with pytest.raises(CandidateError) as refused:
        candidate_book([dict(first, effective_until="2027-01-01"), later])
    assert refused.value.errors[0]["field"] == "rules[0].effective_until"
    book = candidate_book([dict(first, effective_until="2026-01-01"), later])  # consistent: accepted
    assert [rs.id for rs in book.rule_sets] == ["ningxia-2020", "ningxia-2026"]


def test_the_compact_history_keeps_what_a_revocation_before_certification_needs():
    """A contract revoked while only submitted is marked revoked by the engine and a later certification then
    pays nothing: the compact history must keep that, though it holds no status events otherwise."""
    h = History()
    cid = h.submit(terms(amount="1000000.00"))
    h.revoke(cid, at(3, 1))
    h.certify(cid, at(3, 2))
    other = h.submit(terms(amount="2000000.00"))
    h.certify(other, at(3, 3))
    live_engine, live = Engine(default_rule_book()), Ledger()
    for event in h.events:
        live_engine.apply(live, registry_event(event))
    history = DecisionHistory()
    history.extend(h.events, h.events[-1].position)
    simulator = Simulator(default_rule_book(), history)
    assert awards_of(simulator.in_force().ledger) == awards_of(live)
    assert [e.type.split(".")[3] for e in history.events] == ["submitted", "revoked", "certified", "certified"]


def test_a_malformed_certification_is_refused_by_the_simulation_as_by_the_live_engine():
    h = History()
    cid = h.submit(terms(amount="1000000.00"))
    broken = h.certify(cid, at(3, 1))
    broken.data["certified_at"] = "yesterday"  # malformed: skipped, the contract stays submitted
    h.revoke(cid, at(3, 2))  # so this marks it revoked ...
    h.certify(cid, at(3, 3))  # ... and this pays nothing
    live_engine, live = Engine(default_rule_book()), Ledger()
    for event in h.events:
        try:
            live_engine.apply(live, registry_event(event))
        except MalformedEvent:
            pass
    simulator = Simulator(default_rule_book())
    simulator.history.extend(h.events, h.events[-1].position)
    replay = simulator.in_force()
    assert awards_of(replay.ledger) == awards_of(live) == {}
    assert replay.skipped == 1
