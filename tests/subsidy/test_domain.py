"""The award decision (policy README, "How an award is decided"), in memory, one rule at a time."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from tcr_subsidy.adapters.rule_files import default_rule_book, load_rule_book
from tcr_subsidy.application.projection import registry_event
from tcr_subsidy.domain.decision import Engine, Ledger, MalformedEvent, UnknownEventType
from tcr_subsidy.domain.rules import RuleBook, RuleSetError, parse_rule_set
from tests.subsidy.history import CST, History, party, reference, terms

D = Decimal
MARCH = datetime(2025, 3, 1, 10, tzinfo=CST)


def run(history: History, book: RuleBook | None = None) -> tuple[Ledger, list]:
    engine = Engine(book or default_rule_book())
    state = Ledger()
    out = []
    for event in history.events:
        out.extend(engine.apply(state, registry_event(event)))
    return state, out


def award(state: Ledger, contract_id: str, programme: str):
    return next(a for a in state.awards_of(contract_id) if a.programme == programme)


def at(day: int, month: int = 3, year: int = 2025) -> datetime:
    return datetime(year, month, day, 10, tzinfo=CST)


def test_worked_example():
    h = History()
    a = party("enterprise", 1)
    seller = party("foreign")
    c1 = h.certified(terms(amount="9000000.00", buyer=a, seller=seller), at(1))
    c2 = h.certified(terms(amount="6000000.00", buyer=a, seller=seller), at(2))
    c3 = h.certified(terms(amount="2000000.00", buyer=a, seller=seller), at(3))
    state, out = run(h)
    assert [(o.data["entitlement"], o.data["award"], o.data["status"]) for o in out] == [
        ("2700000.00", "2700000.00", "full"),
        ("1800000.00", "1800000.00", "full"),
        ("600000.00", "500000.00", "capped"),
    ]
    h.revoke(c2, at(1, 4))
    c4 = h.certified(terms(amount="9000000.00", buyer=a, seller=seller), at(1, 5))
    state, out = run(h)
    claw = [o for o in out if o.type.endswith("clawed_back.v1")]
    assert [(o.data["previous_award"], o.data["award"], o.data["delta"]) for o in claw] == [
        ("1800000.00", "0.00", "-1800000.00")
    ]
    assert award(state, c3, "import").award == D("500000.00")  # not handed back to the capped contract
    assert award(state, c4, "import").award == D("1800000.00")  # the freed headroom, no more
    assert award(state, c4, "import").status == "capped"
    assert award(state, c1, "import").award == D("2700000.00")
    assert state.caps[award(state, c1, "import").cap_key].used == D("5000000.00")
    # the auditor's view: cap before/after and the cause are in every decision
    last = out[-1].data
    assert (last["cap_used_before"], last["cap_used_after"]) == ("3200000.00", "5000000.00")
    assert last["cause"]["position"] == h.events[-1].position
    assert "min(entitlement, cap left 1800000.00)" in last["explanation"]


def test_year_boundary_is_asia_shanghai():
    h = History()
    a = party("enterprise", 2)
    c2025 = h.certified(
        terms(amount="16000000.00", buyer=a, seller=party("foreign")),
        datetime(2025, 12, 31, 15, 59, tzinfo=UTC),
    )  # 23:59 in Shanghai
    c2026 = h.certified(
        terms(amount="2000000.00", buyer=a, seller=party("foreign")),
        datetime(2025, 12, 31, 16, 30, tzinfo=UTC),
    )  # 2026-01-01 00:30 in Shanghai
    state, _ = run(h)
    assert award(state, c2025, "import").policy_year == 2025
    assert award(state, c2025, "import").award == D("4800000.00")
    assert award(state, c2026, "import").policy_year == 2026
    assert award(state, c2026, "import").award == D("600000.00")  # a fresh 2026 cap, not the 2025 one


@pytest.mark.parametrize(
    "kind,programme,role,base_field,rate,cap",
    [
        ("enterprise", "import", "buyer", "amount", "0.30", "5000000.00"),
        ("enterprise", "export_enterprise", "seller", "technology_amount", "0.05", "1000000.00"),
        ("university", "export_institution", "seller", "technology_amount", "0.05", "1000000.00"),
        ("research_institute", "export_institution", "seller", "technology_amount", "0.05", "1000000.00"),
        ("social_organisation", "brokerage", "intermediary", "technology_amount", "0.02", "1000000.00"),
    ],
)
def test_each_programme_rate_base_and_cap(kind, programme, role, base_field, rate, cap):
    h = History()
    beneficiary = party(kind, 7)
    others = {"seller": party("foreign"), "buyer": party("university", 8), "intermediary": None}
    others[role] = beneficiary
    contracts = []
    for amount in ("12345678.91", "40000000.00", "30000000.00"):  # the third one finds the cap used up
        t = terms(amount=amount, technology_amount=amount, result_id="ZL2021101234567", **others)
        contracts.append(h.certified(t, at(2)))
    state, _ = run(h)
    first = award(state, contracts[0], programme)
    expected = (D(rate) * D("12345678.91")).quantize(D("0.01"), rounding="ROUND_HALF_UP")
    assert first.entitlement == expected and first.award == expected and first.status == "full"
    assert first.base == D("12345678.91")
    second = award(state, contracts[1], programme)
    assert second.award == D(cap) - expected and second.status == "capped"
    third = award(state, contracts[2], programme)
    assert (third.award, third.status) == (D("0.00"), "capped")  # recorded even at 0.00
    assert sum(a.award for a in state.awards.values() if a.programme == programme) == D(cap)


def test_half_up_rounding_to_the_fen():
    h = History()
    c = h.certified(
        terms(amount="0.05", technology_amount="0.05", buyer=party("enterprise", 3), seller=party("enterprise", 4)),
        at(2),
    )
    c2 = h.certified(
        terms(amount="0.15", technology_amount="0.10", buyer=party("enterprise", 5), seller=party("enterprise", 6)),
        at(2),
    )
    state, _ = run(h)
    assert award(state, c, "import").entitlement == D("0.02")  # 0.015 -> 0.02 (half-up, not banker's 0.02/0.01)
    assert award(state, c2, "import").entitlement == D("0.05")  # 0.045 -> 0.05
    assert award(state, c, "export_enterprise").entitlement == D("0.00")  # 0.0025


def test_institution_cap_is_per_project_across_years():
    h = History()
    uni = party("university", 9)
    same_project = dict(seller=uni, buyer=party("foreign"), result_id="ZL202110123456.7")
    c1 = h.certified(terms(amount="15000000.00", **same_project), at(2, 3, 2024))
    c2 = h.certified(terms(amount="10000000.00", **same_project), at(2, 3, 2025))
    other = h.certified(terms(amount="4000000.00", seller=uni, buyer=party("foreign"), result_id="ZL2"), at(3, 3, 2025))
    no_id_1 = h.certified(terms(amount="30000000.00", seller=uni, buyer=party("foreign")), at(4, 3, 2025))
    no_id_2 = h.certified(terms(amount="30000000.00", seller=uni, buyer=party("foreign")), at(5, 3, 2025))
    state, _ = run(h)
    assert award(state, c1, "export_institution").award == D("750000.00")
    assert award(state, c2, "export_institution").award == D("250000.00")  # same project, a year later
    assert award(state, c2, "export_institution").status == "capped"
    assert award(state, other, "export_institution").award == D("200000.00")  # another project: its own cap
    assert award(state, no_id_1, "export_institution").award == D("1000000.00")  # no result_id: its own project
    assert award(state, no_id_2, "export_institution").award == D("1000000.00")


def test_amendment_up_and_down_within_the_cap():
    h = History()
    a = party("enterprise", 10)
    c1 = h.certified(terms(amount="10000000.00", buyer=a, seller=party("foreign")), at(2))
    c2 = h.certified(terms(amount="5000000.00", buyer=a, seller=party("foreign")), at(3))
    h.amend(c1, at(4, 4), amount="12000000.00")  # up: 3.6M wanted, 3.5M free incl. its own 3.0M
    state, out = run(h)
    assert award(state, c2, "import").award == D("1500000.00")
    adj = out[-1]
    assert adj.type == "tcr.subsidy.award.adjusted.v1"
    assert (adj.data["previous_award"], adj.data["award"], adj.data["delta"], adj.data["status"]) == (
        "3000000.00",
        "3500000.00",
        "500000.00",
        "capped",
    )
    assert adj.data["policy_year"] == 2025
    h.amend(c1, at(10, 1, 2026), amount="1000000.00")  # down, amended in 2026: stays in 2025
    state, out = run(h)
    adj = out[-1]
    assert (adj.data["award"], adj.data["delta"], adj.data["status"], adj.data["policy_year"]) == (
        "300000.00",
        "-3200000.00",
        "full",
        2025,
    )
    assert state.caps[award(state, c1, "import").cap_key].used == D("1800000.00")
    assert award(state, c2, "import").award == D("1500000.00")  # not re-decided: freed headroom is for later ones
    c3 = h.certified(terms(amount="20000000.00", buyer=a, seller=party("foreign")), at(20, 12))
    state, _ = run(h)
    assert award(state, c3, "import").award == D("3200000.00")


def test_amendment_to_consulting_claws_back_and_out_of_ningxia_too():
    h = History()
    c = h.certified(terms(amount="1000000.00", buyer=party("enterprise", 11), seller=party("enterprise", 12)), at(2))
    h.amend(c, at(3), category="consulting", subcategory=None)
    state, out = run(h)
    assert {o.type for o in out[-2:]} == {"tcr.subsidy.award.clawed_back.v1"}
    assert all(a.award == D("0.00") and a.status == "clawed_back" for a in state.awards_of(c))
    assert "category consulting" in state.contracts[c].explanation
    h.amend(c, at(4), category="licence", subcategory="patent_ordinary")  # eligible again: decided anew
    state, out = run(h)
    assert award(state, c, "import").award == D("300000.00")
    assert award(state, c, "import").status == "full"


def test_revocation_frees_headroom_for_later_contracts_only():
    h = History()
    seller = party("enterprise", 13)
    c1 = h.certified(terms(amount="15000000.00", seller=seller, buyer=party("foreign")), at(2))
    c2 = h.certified(terms(amount="10000000.00", seller=seller, buyer=party("foreign")), at(3))
    h.revoke(c1, at(4))
    h.revoke(c1, at(5))  # a repeat changes nothing
    h.amend(c1, at(6), amount="16000000.00")  # nor does amending a revoked contract
    c3 = h.certified(terms(amount="30000000.00", seller=seller, buyer=party("foreign")), at(7))
    state, out = run(h)
    assert award(state, c2, "export_enterprise").award == D("250000.00")
    assert award(state, c3, "export_enterprise").award == D("750000.00")
    assert len([o for o in out if o.type.endswith("clawed_back.v1")]) == 1
    assert state.contracts[c1].status == "revoked"


def test_intermediary_earns_brokerage_but_not_an_individual_one():
    h = History()
    broker = party("enterprise", 14)
    c = h.certified(
        terms(
            amount="3000000.00",
            technology_amount="2000000.00",
            seller=party("enterprise", 15),
            buyer=party("enterprise", 16),
            intermediary=broker,
        ),
        at(2),
    )
    c2 = h.certified(
        terms(
            amount="3000000.00",
            seller=party("enterprise", 17),
            buyer=party("enterprise", 18),
            intermediary=party("individual"),
        ),
        at(2),
    )
    state, _ = run(h)
    assert {a.programme: a.award for a in state.awards_of(c)} == {
        "import": D("900000.00"),
        "export_enterprise": D("100000.00"),
        "brokerage": D("40000.00"),
    }
    assert {a.programme for a in state.awards_of(c2)} == {"import", "export_enterprise"}
    assert "intermediary is of kind individual" in state.contracts[c2].considered[-1]["reason"]


@pytest.mark.parametrize("category", ["consulting", "service"])
def test_consulting_and_service_earn_nothing(category):
    h = History()
    c = h.certified(
        terms(category=category, subcategory=None, buyer=party("enterprise", 19), seller=party("university", 20)), at(2)
    )
    state, out = run(h)
    assert out == [] and state.awards_of(c) == []
    assert f"category {category} earns no subsidy" in state.contracts[c].explanation


def test_beneficiaries_outside_ningxia_and_wrong_kinds_earn_nothing():
    h = History()
    c = h.certified(terms(buyer=party("enterprise", 21, region="110105"), seller=party("government", 22)), at(2))
    state, _ = run(h)
    assert state.awards_of(c) == []
    text = state.contracts[c].explanation
    assert "110105, outside Ningxia" in text and "seller is of kind government" in text


def test_no_stacking_one_award_per_beneficiary_per_contract():
    h = History()
    same = party("enterprise", 23)
    c = h.certified(terms(buyer=same, seller=party("enterprise", 24), intermediary=same), at(2))
    state, _ = run(h)
    assert sorted(a.programme for a in state.awards_of(c)) == ["export_enterprise", "import"]
    assert any("no stacking" in (x.get("reason") or "") for x in state.contracts[c].considered)


def test_uncertified_contracts_earn_nothing_and_unknown_types_are_refused():
    h = History()
    c = h.submit(terms())
    h.unknown(at(2))
    engine, state = Engine(default_rule_book()), Ledger()
    assert engine.apply(state, registry_event(h.events[0])) == []
    assert state.contracts[c].status == "submitted"
    with pytest.raises(UnknownEventType):
        engine.apply(state, registry_event(h.events[1]))
    broken = h.certify(c, at(3))
    broken.data["terms"]["amount"] = 12
    with pytest.raises(MalformedEvent):
        engine.apply(state, registry_event(broken))


def test_matches_the_reference_computation_on_a_mixed_history():
    h = History()
    a, b = party("enterprise", 30), party("university", 31)
    ids = [h.certified(terms(amount=f"{n}000000.00", buyer=a, seller=b, result_id="R1"), at(n)) for n in range(1, 8)]
    h.amend(ids[2], at(9), amount="500000.00")
    h.revoke(ids[0], at(10))
    ids.append(h.certified(terms(amount="9000000.00", buyer=a, seller=b, result_id="R1"), at(11)))
    state, _ = run(h)
    expected = reference(h.events)
    assert {(x.contract_id, x.programme, x.beneficiary): x.award for x in state.awards.values()} == expected


SECOND = """
id: ningxia-2027
title: a later rule set with lower rates
effective_from: 2027-01-01
eligible_categories: [development, transfer, licence]
programmes:
  - {programme: import, clause: "(四)", role: buyer, kinds: [enterprise], base: amount, rate: "0.20",
     cap: "3000000.00", cap_scope: policy_year}
  - {programme: export_enterprise, clause: "(四)", role: seller, kinds: [enterprise], base: technology_amount,
     rate: "0.04", cap: "800000.00", cap_scope: policy_year}
"""


def test_a_second_rule_set_decides_contracts_certified_from_its_effective_date(tmp_path: Path):
    (tmp_path / "ningxia-2027.yaml").write_text(SECOND)
    from tcr_subsidy.adapters.rule_files import DEFAULT_RULES_DIR

    book = load_rule_book(DEFAULT_RULES_DIR, tmp_path)
    assert [r.id for r in book.rule_sets] == ["ningxia-2020", "ningxia-2027"]
    assert book.in_force_on(date(2026, 12, 31)).id == "ningxia-2020"
    h = History()
    a = party("enterprise", 40)
    before = h.certified(
        terms(amount="1000000.00", buyer=a, seller=party("university", 41)),
        datetime(2026, 12, 31, 15, 59, tzinfo=UTC),
    )
    after = h.certified(
        terms(amount="1000000.00", buyer=a, seller=party("university", 41)),
        datetime(2026, 12, 31, 16, 0, tzinfo=UTC),
    )  # 2027-01-01 00:00 Shanghai
    big = h.certified(terms(amount="20000000.00", buyer=a, seller=party("university", 41)), at(2, 3, 2027))
    state, _ = run(h, book)
    assert (award(state, before, "import").award, award(state, before, "import").rule_set) == (
        D("300000.00"),
        "ningxia-2020",
    )
    assert (award(state, after, "import").award, award(state, after, "import").rule_set) == (
        D("200000.00"),
        "ningxia-2027",
    )
    assert award(state, big, "import").award == D("2800000.00")  # the 2027 cap of 3,000,000.00
    assert [a.programme for a in state.awards_of(after)] == ["import"]  # 2027 has no institution programme
    h.amend(before, at(5, 3, 2027), amount="2000000.00")  # an amendment keeps the rule set of its decision
    state, _ = run(h, book)
    assert award(state, before, "import").award == D("600000.00")


@pytest.mark.parametrize(
    "broken,message",
    [
        ({"rate": 0.3}, "quoted decimal string"),
        ({"programme": "bonus"}, "unknown programme"),
        ({"cap": "1.001"}, "more than two decimals"),
        ({"cap_scope": "month"}, "cap_scope"),
    ],
)
def test_bad_rule_sets_are_refused(broken, message):
    raw = {
        "id": "x",
        "effective_from": "2030-01-01",
        "eligible_categories": ["licence"],
        "programmes": [
            {
                "programme": "import",
                "clause": "c",
                "role": "buyer",
                "kinds": ["enterprise"],
                "base": "amount",
                "rate": "0.3",
                "cap": "1.00",
                "cap_scope": "policy_year",
                **broken,
            }
        ],
    }
    with pytest.raises(RuleSetError, match=message):
        parse_rule_set(raw)
