"""Policy integrity in the subsidy engine (issue 10): the amendment rule, one identity per party and project
whatever the spelling in (old) registry events, and registry text the stores must keep (issue 11: U+0000)."""

from __future__ import annotations

import asyncio
import copy
from datetime import datetime
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcr_shared.language.events.envelope import FeedEvent
from tcr_shared.platform.database import Database
from tcr_subsidy.adapters.feeds import NotifyingSink
from tcr_subsidy.adapters.persistence import migrate
from tcr_subsidy.adapters.persistence.queries import Queries
from tcr_subsidy.adapters.rule_files import default_rule_book
from tcr_subsidy.application.projection import AwardProjection, registry_event
from tcr_subsidy.domain.decision import Engine
from tcr_subsidy.domain.ledger import Ledger
from tests.subsidy.history import CAPS, CST, History, party, reference, terms
from tests.subsidy.test_properties import build, operations


def run(history: History) -> tuple[Ledger, list]:
    engine, ledger = Engine(default_rule_book()), Ledger()
    out = [o for e in history.events for o in engine.apply(ledger, registry_event(e))]
    return ledger, out


def awards_of(ledger: Ledger) -> dict[tuple[str, str, str], Decimal]:
    return {(a.contract_id, a.programme, a.beneficiary): a.award for a in ledger.awards.values()}


def at(month: int, day: int = 1) -> datetime:
    return datetime(2025, month, day, 10, tzinfo=CST)


# -- the amendment rule ---------------------------------------------------------------------------------------
def spec_example() -> tuple[History, dict[str, str], dict]:
    """The worked example: 9M, 6M, 2M licences bought by enterprise A in 2025; the third is capped at 500,000.00;
    the second is revoked (1,800,000.00 of headroom freed)."""
    h, a = History(), party("enterprise", 1)
    seller = party("enterprise", 2, "110105")  # outside Ningxia: only the import programme pays
    ids = {}
    for name, amount, month in (("c1", "9000000.00", 3), ("c2", "6000000.00", 4), ("c3", "2000000.00", 5)):
        ids[name] = h.certified(terms(amount=amount, buyer=a, seller=seller), at(month))
    h.revoke(ids["c2"], at(6))
    return h, ids, a


def import_award(ledger: Ledger, contract_id: str):
    return next(x for x in ledger.awards_of(contract_id) if x.programme == "import")


def test_a_title_only_amendment_of_a_capped_contract_does_not_pick_up_freed_headroom():
    h, ids, a = spec_example()
    h.amend(ids["c3"], at(7), title="contract (title corrected)")
    ledger, out = run(h)
    c3 = import_award(ledger, ids["c3"])
    assert (c3.entitlement, c3.award, c3.status) == (Decimal("600000.00"), Decimal("500000.00"), "capped")
    assert not [o for o in out if o.subject == ids["c3"] and o.type.endswith("adjusted.v1")]
    # the headroom stays for contracts processed later, as the spec says
    c4 = h.certified(terms(amount="6000000.00", buyer=a, seller=party("enterprise", 2, "110105")), at(8))
    ledger, _ = run(h)
    assert import_award(ledger, c4).award == Decimal("1800000.00")
    assert awards_of(ledger) == reference(h.events)


def test_an_amendment_that_raises_the_entitlement_may_use_the_freed_headroom():
    h, ids, _ = spec_example()
    h.amend(ids["c3"], at(7), amount="2500000.00")  # entitlement 750,000.00 > 600,000.00
    ledger, out = run(h)
    c3 = import_award(ledger, ids["c3"])
    assert (c3.entitlement, c3.award, c3.status) == (Decimal("750000.00"), Decimal("750000.00"), "full")
    adjusted = [o for o in out if o.subject == ids["c3"] and o.type.endswith("adjusted.v1")]
    assert [o.data["delta"] for o in adjusted] == ["250000.00"]
    assert "cap left" in c3.explanation
    assert awards_of(ledger) == reference(h.events)


def test_an_amendment_that_lowers_the_entitlement_keeps_the_lower_of_the_two():
    h, ids, _ = spec_example()
    h.amend(ids["c3"], at(7), amount="1900000.00")  # entitlement 570,000.00, still above the 500,000.00 paid
    h.amend(ids["c1"], at(7), amount="8000000.00")  # 2,400,000.00 < 2,700,000.00: paid the new entitlement
    ledger, _ = run(h)
    c3 = import_award(ledger, ids["c3"])
    assert (c3.entitlement, c3.award, c3.status) == (Decimal("570000.00"), Decimal("500000.00"), "capped")
    assert "never raises the award" in c3.explanation
    assert import_award(ledger, ids["c1"]).award == Decimal("2400000.00")
    assert awards_of(ledger) == reference(h.events)


def test_an_award_clawed_back_by_an_amendment_is_decided_anew_when_it_becomes_eligible_again():
    h, ids, _ = spec_example()
    h.amend(ids["c3"], at(7), category="service")  # no longer earns: clawed back
    h.amend(ids["c3"], at(8), category="licence")  # earns again: decided against the cap left (1,800,000.00)
    ledger, _ = run(h)
    c3 = import_award(ledger, ids["c3"])
    assert (c3.award, c3.status) == (Decimal("600000.00"), "full")
    assert awards_of(ledger) == reference(h.events)


# -- one identity per party and project ------------------------------------------------------------------------
def respell(code: str, how: int) -> str:
    """Another spelling of a credit code or result id that canonicalises to the same: lower case, spaces,
    hyphens (what old registry events may carry)."""
    spellings = [
        code.lower(),
        f"{code[:6]}-{code[6:]}",
        f" {code[:2]} {code[2:].lower()} ",
        "-".join(code),
        code,
    ]
    return spellings[how % len(spellings)]


def respelled(history: History, choices: list[int]) -> History:
    """The same history with every credit code and result id spelled differently, event by event."""
    out = History()
    for i, event in enumerate(history.events):
        data = copy.deepcopy(event.data)
        for key in ("terms", "previous_terms"):
            t = data.get(key)
            if not isinstance(t, dict):
                continue
            for role in ("seller", "buyer", "intermediary"):
                if t.get(role) and t[role].get("credit_code"):
                    t[role]["credit_code"] = respell(t[role]["credit_code"], choices[(i + len(role)) % len(choices)])
            if t.get("result_id"):
                t["result_id"] = respell(t["result_id"], choices[(i + 1) % len(choices)])
        out.events.append(event.model_copy(update={"data": data}))
    return out


def test_three_spellings_of_one_enterprise_share_one_cap():
    h, seller = History(), party("enterprise", 2, "110105")
    buyer = party("enterprise", 7)
    code = buyer["credit_code"]
    for n, spelling in enumerate((code, code.lower(), f"{code[:8]}-{code[8:]}")):
        h.certified(terms(amount="10000000.00", buyer=dict(buyer, credit_code=spelling), seller=seller), at(3, n + 1))
    ledger, _ = run(h)
    assert sorted(a.award for a in ledger.awards.values()) == [
        Decimal("0.00"),
        Decimal("2000000.00"),
        Decimal("3000000.00"),
    ]
    assert {a.beneficiary for a in ledger.awards.values()} == {code}
    assert [u.used for u in ledger.caps.values()] == [CAPS["import"]]


def test_two_spellings_of_one_result_id_are_one_project():
    h, uni = History(), party("university", 3)
    for n, result_id in enumerate(("ZL202310077777.X", "zl 202310077777.x")):
        h.certified(
            terms(amount="12000000.00", buyer=party("enterprise", 8, "110105"), seller=uni, result_id=result_id),
            at(3, n + 1),
        )
    ledger, _ = run(h)
    institution = sorted(a.award for a in ledger.awards.values() if a.programme == "export_institution")
    assert institution == [Decimal("400000.00"), Decimal("600000.00")]
    assert {a.project for a in ledger.awards.values()} == {"result:ZL202310077777.X"}


spellings = st.lists(st.integers(0, 9), min_size=1, max_size=7)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=operations, choices=spellings)
def test_awards_are_identical_whatever_the_spelling_of_codes_and_result_ids(ops, choices):
    h = build(ops)
    canonical_ledger, canonical_out = run(h)
    ledger, out = run(respelled(h, choices))
    assert awards_of(ledger) == awards_of(canonical_ledger) == reference(h.events)
    assert [(o.id, o.type, o.data["award"], o.data["beneficiary"]) for o in out] == [
        (o.id, o.type, o.data["award"], o.data["beneficiary"]) for o in canonical_out
    ]
    assert {k: u.used for k, u in ledger.caps.items()} == {k: u.used for k, u in canonical_ledger.caps.items()}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=operations, data=st.data())
def test_no_cap_is_exceeded_whatever_the_order_of_amendments_and_revocations(ops, data):
    """Certifications keep their order; amendments, revocations and submissions are shuffled among them."""
    certify = [op for op in ops if op[0] == "certify"]
    others = data.draw(st.permutations([op for op in ops if op[0] != "certify"]))
    places = data.draw(st.lists(st.integers(0, len(certify)), min_size=len(others), max_size=len(others)))
    order: list = list(certify)
    for op, place in sorted(zip(others, places, strict=True), key=lambda x: -x[1]):
        order.insert(place, op)
    h = build(order)
    engine, ledger = Engine(default_rule_book()), Ledger()
    for event in h.events:
        engine.apply(ledger, registry_event(event))
        for usage in ledger.caps.values():
            assert Decimal("0.00") <= usage.used <= CAPS[usage.programme]
    assert awards_of(ledger) == reference(h.events)


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(ops=operations, choices=spellings, sizes=st.lists(st.integers(1, 9), min_size=1, max_size=4))
def test_a_respelled_history_replayed_in_any_page_size_gives_the_canonical_state(tmp_path_factory, ops, choices, sizes):
    h = build(ops)
    variants = [h.events, respelled(h, choices).events]

    async def replay(events: list[FeedEvent], step_of) -> dict:
        database = Database(f"sqlite:///{tmp_path_factory.mktemp('spell') / 'subsidy.db'}")
        await asyncio.to_thread(migrate.upgrade, database)
        db = database.async_engine()
        try:
            sink = NotifyingSink(db, AwardProjection(Engine(default_rule_book())), lambda: None)
            i = 0
            while i < len(events):
                page = events[i : i + step_of(i)]
                await sink.apply(page, page[-1].position)
                i += len(page)
            return await Queries(db).snapshot()
        finally:
            await db.dispose()

    async def both() -> None:
        canonical = await replay(variants[0], lambda i: 1000)
        spelled = await replay(variants[1], lambda i: sizes[(i // 3) % len(sizes)])
        assert spelled == canonical

    asyncio.run(both())


# -- registry text the stores must keep -----------------------------------------------------------------------
async def test_a_nul_in_an_old_registry_event_never_stops_the_store(database_url):
    """The registry accepted U+0000 in names and titles before its text rule; PostgreSQL TEXT refuses it. Such an
    event goes through the real store (both backends) and the events after it are applied too."""
    h = History()
    buyer = party("enterprise", 31, name="Yinchuan\x00 Tech")
    t = terms(amount="1000000.00", buyer=buyer, seller=party("university", 32, name="Uni\x00versity"))
    t["title"] = "licence\x00 of a patent"
    first = h.certified(t, at(3))
    h.revoke(first, at(4))
    h.events[-1].data["reason"] = "void\x00"
    second = h.certified(terms(amount="2000000.00", buyer=party("enterprise", 33)), at(5))
    database = Database(database_url)
    await asyncio.to_thread(migrate.upgrade, database)
    db = database.async_engine()
    try:
        sink = NotifyingSink(db, AwardProjection(Engine(default_rule_book())), lambda: None)
        await sink.apply(h.events, h.events[-1].position)
        queries = Queries(db)
        assert await sink.position() == h.events[-1].position
        one = await queries.contract_awards(first)
        names = {a["beneficiary_name"] for a in one["awards"]}
        assert names == {"Yinchuan\ufffd Tech", "Uni\ufffdversity"}
        assert all(a["award"] == "0.00" for a in one["awards"])
        assert "void\ufffd" in one["awards"][0]["explanation"]
        assert (await queries.contract_awards(second))["awards"][0]["award"] == "600000.00"
        feed = await queries.read(0, 100)
        assert "Yinchuan\ufffd Tech" in {e.data.get("beneficiary_name") for e in feed.events}
    finally:
        await db.dispose()


@pytest.mark.parametrize("field", ["name", "region", "country"])
def test_nul_in_any_party_text_is_read_as_the_replacement_character(field):
    h = History()
    buyer = party("enterprise", 41)
    buyer[field] = (buyer[field] or "") + "\x00"
    h.certified(terms(amount="1000000.00", buyer=buyer), at(3))
    ledger, _ = run(h)
    text = repr(ledger.contracts) + repr(ledger.awards)
    assert "\x00" not in text and "\\x00" not in text
