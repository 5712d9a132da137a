"""The page ledger (what a page loads and what the engine changed) and the caps the domain says a page can touch."""

from __future__ import annotations

import copy
from datetime import datetime

import pytest

from tcr_subsidy.adapters.rule_files import default_rule_book
from tcr_subsidy.application.page import PageLedger
from tcr_subsidy.application.projection import registry_event
from tcr_subsidy.domain.decision import Engine, MalformedEvent, cap_keys_touched
from tcr_subsidy.domain.ledger import Ledger, NotPreloaded
from tests.subsidy.history import CST, History, party, terms

MARCH = datetime(2025, 3, 1, 10, tzinfo=CST)


def test_a_page_reads_only_the_caps_the_domain_named_and_records_what_changed():
    h = History()
    buyer, seller = party("enterprise", 1), party("university", 2)
    c = h.certified(terms(amount="1000000.00", buyer=buyer, seller=seller), MARCH)
    events = [registry_event(e) for e in h.events]
    engine = Engine(default_rule_book())

    blind = PageLedger()  # no caps named: deciding must fail loudly, never count a cap from zero
    with pytest.raises(NotPreloaded):
        engine.apply(blind, events[-1])

    page = PageLedger()
    page.expect_caps(cap_keys_touched(engine.rulebook, page, events))
    out = engine.apply(page, events[-1])
    assert {o.data["programme"] for o in out} == {"import", "export_institution"}
    assert page.changed_contracts == {c}
    assert page.changed_awards == {o.award_id for o in out}
    assert page.changed_caps == {a.cap_key for a in page.awards.values()}
    assert page.changed_caps <= page.cap_keys


def test_caps_touched_include_the_stored_awards_caps_and_the_previous_terms():
    h = History()
    buyer, other = party("enterprise", 1), party("enterprise", 3)
    c = h.certified(terms(amount="1000000.00", buyer=buyer, seller=party("foreign")), MARCH)
    engine, ledger = Engine(default_rule_book()), Ledger()
    for e in h.events:
        engine.apply(ledger, registry_event(e))
    h.amend(c, MARCH, buyer=other)
    amendment = registry_event(h.events[-1])
    keys = cap_keys_touched(engine.rulebook, ledger, [amendment])
    assert {a.cap_key for a in ledger.awards.values()} <= keys
    assert any(other["credit_code"] in k for k in keys) and any(buyer["credit_code"] in k for k in keys)


@pytest.mark.parametrize(
    "breaks",
    [
        lambda t: t.update(amount=12),
        lambda t: t.update(category="poetry"),
        lambda t: t.update(signed_on="1 March"),
        lambda t: t.update(consideration=None),
        lambda t: t["buyer"].update(kind="alien"),
        lambda t: t["seller"].pop("name"),
        lambda t: t.pop("title"),
        lambda t: t.update(intermediary="someone"),
    ],
)
def test_terms_that_do_not_match_the_registry_schema_are_malformed(breaks):
    h = History()
    h.certified(terms(buyer=party("enterprise", 1), seller=party("foreign")), MARCH)
    event = copy.deepcopy(h.events[-1])
    breaks(event.data["terms"])
    with pytest.raises(MalformedEvent):
        Engine(default_rule_book()).apply(Ledger(), registry_event(event))
