"""The registry's commands in memory, against a fake unit of work: what each command keeps, what it refuses,
and that registration numbers are gap-free per point and year, in the order of certification."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from uuid import uuid4

import pytest

from tcr_registry.application import commands
from tcr_registry.application.errors import AlreadySubmitted, ContractNotFound, StaleVersion
from tcr_registry.domain.contract import Contract
from tcr_registry.domain.errors import InvalidTerms, NotAllowedInState, OutsideJurisdiction
from tcr_registry.domain.registration_book import RegistrationBook
from tcr_shared.language.vocabulary import CERTIFIED, REJECTED, REVOKED, SUBMITTED, WITHDRAWN
from tests.registry.memory import NOW, FakeRegistry, organisation, point, terms


@pytest.fixture
def registry() -> FakeRegistry:
    return FakeRegistry()


def submit(registry: FakeRegistry, actor, **changes) -> Contract:
    return registry.run(commands.submit(uuid4(), actor, terms(**changes), NOW))


def certify(registry: FakeRegistry, actor, contract: Contract, at=NOW, version=None) -> Contract:
    return registry.run(commands.certify(contract.id, actor, at, NOW, None, None, version))


def test_submit_keeps_the_contract(registry):
    actor = point()
    contract = submit(registry, actor)
    kept = registry.aggregates[contract.id]
    assert (kept.status, kept.point_id) == (SUBMITTED, actor.point_id)
    assert [type(e) for e in registry.log] == [Contract.Submitted]


def test_the_same_id_cannot_be_submitted_twice(registry):
    actor = point()
    contract_id = uuid4()
    registry.run(commands.submit(contract_id, actor, terms(), NOW))
    with pytest.raises(AlreadySubmitted):
        registry.run(commands.submit(contract_id, actor, terms(title="again"), NOW))
    assert registry.aggregates[contract_id].terms.title != "again"


def test_a_point_submits_only_within_its_jurisdiction(registry):
    with pytest.raises(OutsideJurisdiction):
        submit(registry, point("6402"), seller=organisation("640104"))
    assert registry.aggregates == {} and registry.log == []


def test_invalid_terms_are_refused_before_jurisdiction_is_asked(registry):
    # No party in Ningxia: invalid for every point (422), not merely outside this one's jurisdiction (403).
    with pytest.raises(InvalidTerms):
        submit(registry, point("6402"), seller=organisation("110108"), buyer=organisation("310101"))


def test_certification_numbers_are_gap_free_per_point_and_year_in_order(registry):
    first, second = point("6401", "01"), point("6401", "02")
    contracts = [submit(registry, first) for _ in range(5)]
    other = [submit(registry, second) for _ in range(2)]
    numbers = [certify(registry, first, c).registration_number for c in contracts]
    assert numbers == [f"2025640101{n:06d}" for n in range(1, 6)]
    assert [certify(registry, second, c).registration_number for c in other] == [
        "2025640102000001",
        "2025640102000002",
    ]
    book = registry.aggregates[RegistrationBook.id_for(first.point_id, 2025)]
    assert book.last_sequence == 5


def test_each_policy_year_has_its_own_book(registry):
    actor = point("6401", "03")
    late = submit(registry, actor, signed_on=(NOW - timedelta(days=700)).date())
    early = submit(registry, actor, signed_on=(NOW - timedelta(days=700)).date())
    assert certify(registry, actor, late, at=NOW).registration_number == "2025640103000001"
    assert certify(registry, actor, early, at=NOW.replace(year=2024)).registration_number == "2024640103000001"


def test_a_refused_certification_consumes_no_number(registry):
    actor = point()
    refused, accepted = submit(registry, actor), submit(registry, actor)
    with pytest.raises(InvalidTerms):
        certify(registry, actor, refused, at=NOW + timedelta(hours=1))  # in the future
    assert registry.aggregates[refused.id].status == SUBMITTED
    assert RegistrationBook.id_for(actor.point_id, 2025) not in registry.aggregates
    assert certify(registry, actor, accepted).registration_number.endswith("000001")


def test_an_expert_review_is_needed_from_five_million(registry):
    actor = point()
    big = submit(registry, actor, amount=Decimal("6000000.00"), technology_amount=Decimal("5000000.00"))
    with pytest.raises(InvalidTerms):
        certify(registry, actor, big)
    done = registry.run(commands.certify(big.id, actor, NOW, NOW, None, "ZJ-1", None))
    assert (done.status, done.expert_review_ref) == (CERTIFIED, "ZJ-1")


@pytest.mark.parametrize(
    ("make", "status"),
    [
        (lambda c, a: commands.reject(c, a, "incomplete", "no signature page", NOW, None), REJECTED),
        (lambda c, a: commands.withdraw(c, a, None, NOW, None), WITHDRAWN),
    ],
)
def test_a_submitted_contract_may_be_rejected_or_withdrawn_once(registry, make, status):
    actor = point()
    contract = submit(registry, actor)
    assert registry.run(make(contract.id, actor)).status == status
    for again in (make(contract.id, actor), commands.certify(contract.id, actor, NOW, NOW, None, None, None)):
        with pytest.raises(NotAllowedInState):
            registry.run(again)
    assert registry.aggregates[contract.id].status == status


def test_only_a_certified_contract_may_be_revoked(registry):
    actor = point()
    contract = submit(registry, actor)
    with pytest.raises(NotAllowedInState):
        registry.run(commands.revoke(contract.id, actor, "forged", NOW, None))
    certify(registry, actor, contract)
    assert registry.run(commands.revoke(contract.id, actor, "forged", NOW, None)).status == REVOKED
    with pytest.raises(NotAllowedInState):
        registry.run(commands.amend(contract.id, actor, {"title": "x"}, "late", NOW, None, None))


def test_an_amendment_that_moves_the_contract_out_of_the_jurisdiction_is_refused(registry):
    actor = point("6401")
    contract = submit(registry, actor)
    move = commands.amend(contract.id, actor, {"seller": {"region": "640205"}}, "moved", NOW, None, None)
    with pytest.raises(OutsideJurisdiction):
        registry.run(move)
    assert registry.aggregates[contract.id].terms.seller.region == "640104"  # nothing kept
    stay = commands.amend(contract.id, actor, {"seller": {"region": "640106"}}, "moved", NOW, None, None)
    assert registry.run(stay).terms.seller.region == "640106"


def test_a_point_acts_only_on_contracts_in_its_jurisdiction(registry):
    contract = submit(registry, point("6401"))
    with pytest.raises(OutsideJurisdiction):
        certify(registry, point("6402"), contract)
    assert certify(registry, point("6400"), contract).status == CERTIFIED  # the regional point covers all


def test_a_stale_version_is_refused(registry):
    actor = point()
    contract = submit(registry, actor)
    with pytest.raises(StaleVersion) as stale:
        certify(registry, actor, contract, version=contract.version + 1)
    assert stale.value.actual == contract.version
    assert certify(registry, actor, contract, version=contract.version).status == CERTIFIED


def test_an_unknown_contract_or_a_registration_book_is_not_found(registry):
    actor = point()
    certify(registry, actor, submit(registry, actor))
    for missing in (uuid4(), RegistrationBook.id_for(actor.point_id, 2025)):
        with pytest.raises(ContractNotFound):
            registry.run(commands.withdraw(missing, actor, None, NOW, None))
