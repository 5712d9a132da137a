"""The registry's domain in memory: a contract's rules and states, registration books, jurisdiction."""

from __future__ import annotations

import copy
from datetime import timedelta
from decimal import Decimal
from uuid import uuid4

import pytest

from tcr_registry.domain.contract import Contract
from tcr_registry.domain.errors import InvalidTerms, NotAllowedInState
from tcr_registry.domain.jurisdiction import may_register
from tcr_registry.domain.registration_book import RegistrationBook
from tcr_shared.language.vocabulary import CERTIFIED, REJECTED, REVOKED, SUBMITTED, WITHDRAWN
from tests.registry.memory import NOW, organisation, terms


def submitted(**changes) -> Contract:
    return Contract.submit(uuid4(), "point-1", terms(**changes), NOW)


def certified(number: str = "2025640101000001") -> Contract:
    contract = submitted()
    contract.certify(number, NOW, contract.terms, None)
    return contract


def fields(error: InvalidTerms) -> list[str]:
    return [f for f, _ in error.errors]


def test_a_submitted_contract_keeps_its_terms_and_point():
    given = terms()
    contract = Contract.submit(uuid4(), "point-1", given, NOW)
    assert (contract.status, contract.point_id, contract.terms) == (SUBMITTED, "point-1", given)
    assert contract.registration_number is None


def test_submitting_checks_every_rule_and_names_each_field():
    with pytest.raises(InvalidTerms) as refused:
        submitted(technology_amount=Decimal("950000.00"), title=" ", category="painting")
    assert set(fields(refused.value)) == {"technology_amount", "title", "category"}


def test_a_contract_with_no_party_in_ningxia_is_invalid():
    with pytest.raises(InvalidTerms) as refused:
        submitted(seller=organisation("110108"), buyer=organisation("310101"))
    assert fields(refused.value) == ["seller.region"]


def test_a_contract_signed_in_the_future_is_invalid():
    with pytest.raises(InvalidTerms) as refused:
        submitted(signed_on=(NOW + timedelta(days=2)).date())
    assert fields(refused.value) == ["signed_on"]


def test_certifying_records_the_number_year_and_terms():
    contract = certified("2025640101000007")
    assert (contract.status, contract.registration_number, contract.policy_year) == (
        CERTIFIED,
        "2025640101000007",
        2025,
    )


@pytest.mark.parametrize(
    ("when", "expert_review_ref", "field"),
    [
        (NOW + timedelta(minutes=1), "ZJ-1", "certified_at"),  # in the future
        (NOW.replace(month=2), "ZJ-1", "certified_at"),  # before the contract was signed
        (NOW, None, "expert_review_ref"),  # 5,000,000.00 or more needs an expert review
    ],
)
def test_what_certification_checks(when, expert_review_ref, field):
    contract = submitted(amount=Decimal("6000000.00"), technology_amount=Decimal("5000000.00"))
    with pytest.raises(InvalidTerms) as refused:
        contract.check_certifiable(when, NOW, None, expert_review_ref)
    assert fields(refused.value) == [field]


def test_a_verified_technology_amount_replaces_the_submitted_one():
    contract = submitted()
    checked = contract.check_certifiable(NOW, NOW, Decimal("700000.00"), None)
    contract.certify("2025640101000001", NOW, checked, None)
    assert contract.terms.technology_amount == Decimal("700000.00")


def act(contract: Contract, action: str) -> None:
    if action == "certify":
        contract.certify("2025640101000002", NOW, contract.terms, None)
    elif action == "reject":
        contract.reject("incomplete", "no signature page", NOW)
    elif action == "withdraw":
        contract.withdraw(None, NOW)
    elif action == "amend":
        contract.amend({"title": f"amended {uuid4()}"}, "typo", NOW)
    elif action == "revoke":
        contract.revoke("forged", NOW)


def in_state(status: str) -> Contract:
    contract = submitted()
    path = {
        SUBMITTED: [],
        CERTIFIED: ["certify"],
        REJECTED: ["reject"],
        WITHDRAWN: ["withdraw"],
        REVOKED: ["certify", "revoke"],
    }[status]
    for action in path:
        act(contract, action)
    assert contract.status == status
    return contract


ALLOWED = {
    SUBMITTED: {"certify", "reject", "withdraw", "amend"},
    CERTIFIED: {"amend", "revoke"},
    REJECTED: set(),
    WITHDRAWN: set(),
    REVOKED: set(),
}
AFTER = {"certify": CERTIFIED, "reject": REJECTED, "withdraw": WITHDRAWN, "revoke": REVOKED}


@pytest.mark.parametrize("status", list(ALLOWED))
@pytest.mark.parametrize("action", ["certify", "reject", "withdraw", "amend", "revoke"])
def test_which_actions_each_status_allows(status, action):
    contract = in_state(status)
    version = contract.version
    if action in ALLOWED[status]:
        act(contract, action)
        assert contract.status == AFTER.get(action, status)  # an amendment keeps the status
        assert contract.version == version + 1
    else:
        with pytest.raises(NotAllowedInState):
            act(contract, action)
        assert (contract.status, contract.version) == (status, version)


def test_an_amendment_must_change_something_and_records_what_it_changed():
    contract = certified()
    with pytest.raises(InvalidTerms):
        contract.amend({"title": contract.terms.title}, "nothing", NOW)
    contract.amend({"amount": "950000.00", "buyer": {"region": "640205"}}, "audit", NOW)
    amended = contract.collect_events()[-1]
    assert isinstance(amended, Contract.Amended)
    assert amended.changed_fields == ["amount", "buyer.region"]
    assert amended.previous_terms["amount"] == "900000.00"
    assert (amended.status, amended.registration_number) == (CERTIFIED, "2025640101000001")


def test_a_certified_amendment_that_reaches_five_million_needs_an_expert_review():
    contract = certified()
    with pytest.raises(InvalidTerms) as refused:
        contract.amend({"amount": "6000000.00", "technology_amount": "5000000.00"}, "audit", NOW)
    assert fields(refused.value) == ["expert_review_ref"]
    contract.amend({"amount": "6000000.00", "technology_amount": "5000000.00"}, "audit", NOW, "ZJ-9")
    assert contract.expert_review_ref == "ZJ-9"


def test_a_revocation_carries_what_it_revokes():
    contract = certified("2025640101000003")
    contract.revoke("forged", NOW)
    revoked = contract.collect_events()[-1]
    assert (revoked.registration_number, revoked.policy_year, revoked.terms) == (
        "2025640101000003",
        2025,
        contract.terms_record,
    )


def test_a_contract_is_the_sum_of_its_events():
    contract = certified()
    contract.amend({"title": "新题目"}, "typo", NOW)
    contract.revoke("forged", NOW)
    replayed = None
    for event in contract.collect_events():
        replayed = event.mutate(replayed)
    assert (replayed.status, replayed.terms_record, replayed.registration_number, replayed.version) == (
        contract.status,
        contract.terms_record,
        contract.registration_number,
        contract.version,
    )


def test_a_registration_book_issues_numbers_in_order_without_gaps():
    book = RegistrationBook.open("point-1", "640105", 2025)
    numbers = [book.issue(f"c{n}", NOW) for n in range(1, 4)]
    assert numbers == ["2025640105000001", "2025640105000002", "2025640105000003"]
    assert book.id == RegistrationBook.id_for("point-1", 2025) != RegistrationBook.id_for("point-1", 2026)


def test_a_full_registration_book_refuses_to_issue():
    book = RegistrationBook.open("point-1", "640105", 2025)
    book.last_sequence = 999_999
    with pytest.raises(OverflowError):
        book.issue("c", NOW)


@pytest.mark.parametrize(
    ("jurisdiction", "seller", "buyer", "allowed"),
    [
        ("6401", "640104", "640205", True),  # the seller's prefecture decides
        ("6402", "640104", "640205", False),
        ("6402", "110108", "640205", True),  # a seller outside Ningxia: the buyer's prefecture decides
        ("6401", "110108", "640205", False),
        ("6400", "640502", "110108", True),  # the regional point covers all of Ningxia
    ],
)
def test_jurisdiction(jurisdiction, seller, buyer, allowed):
    contract_terms = terms(seller=organisation(seller), buyer=organisation(buyer))
    assert may_register(jurisdiction, contract_terms) is allowed


def test_a_contracts_terms_are_read_once_per_record_and_follow_every_event():
    """Contract.terms keeps what it read from the current record outside the state the library compares and
    shows: a contract that has read its terms equals (and shows as) one that has not, copies included, and an
    event that replaces the record is seen at once."""
    contract = submitted()
    untouched = copy.deepcopy(contract)
    first = contract.terms
    assert contract.terms is first  # read once
    assert contract == untouched and repr(contract) == repr(untouched)
    copied = copy.deepcopy(contract)
    assert copied == contract and copied.terms == first
    contract.amend({"title": "一种新的枸杞多糖提取技术许可合同"}, "typo", NOW)
    assert contract.terms.title == "一种新的枸杞多糖提取技术许可合同" and copied.terms.title == first.title
    assert Contract.submit(contract.id, "point-1", terms(), NOW) != contract
