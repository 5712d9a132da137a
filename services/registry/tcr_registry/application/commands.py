"""The registry's commands. Each returns a function of a UnitOfWork, run by the writer thread, so that
commands on the same contract or registration book never interleave within a process."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from tcr_registry.application.actor import PointActor
from tcr_registry.application.errors import AlreadySubmitted, ContractNotFound, StaleVersion
from tcr_registry.application.ports import Command, UnitOfWork
from tcr_registry.domain.contract import Contract
from tcr_registry.domain.errors import OutsideJurisdiction
from tcr_registry.domain.jurisdiction import may_register
from tcr_registry.domain.registration_book import RegistrationBook
from tcr_registry.domain.terms import Terms
from tcr_shared.language.policy_time import policy_year


def submit(contract_id: UUID, actor: PointActor, terms: Terms, at: datetime) -> Command[Contract]:
    def run(uow: UnitOfWork) -> Contract:
        if not uow.is_new(contract_id):
            raise AlreadySubmitted(contract_id)
        # The rules first (Contract.submit validates): a contract with no party in Ningxia is invalid (422) for
        # every point, not merely outside this point's jurisdiction (403). Until uow.add, nothing is kept.
        contract = Contract.submit(contract_id, actor.point_id, terms, at)
        _check_jurisdiction(actor, terms)
        uow.add(contract)
        return contract

    return run


def certify(
    contract_id: UUID,
    actor: PointActor,
    certified_at: datetime | None,
    now: datetime | None,
    technology_amount: Decimal | None,
    expert_review_ref: str | None,
    expected_version: int | None,
) -> Command[Contract]:
    """`now` None: the clock is read when the command runs, i.e. in commit order, so that certifications at
    "now" (the default when `certified_at` is None) racing each other never look out of number order."""

    def run(uow: UnitOfWork) -> Contract:
        current = now or datetime.now(UTC)
        at = certified_at or current
        contract = _contract_for(uow, contract_id, actor, expected_version)
        terms = contract.check_certifiable(at, current, technology_amount, expert_review_ref)
        year = policy_year(at)
        book = uow.get(RegistrationBook.id_for(actor.point_id, year))
        if book is None:
            book = RegistrationBook.open(actor.point_id, actor.registration_prefix, year)
            uow.add(book)
        if now is None and certified_at is None:
            # Read the clock again now that the book is loaded: another writer (another process on the same
            # database) may have certified in it between the first reading and the load, at a later "now".
            later = datetime.now(UTC)
            if policy_year(later) == year:
                at = later
        number = book.issue(str(contract.id), at)  # refuses a time earlier than the book's last number
        contract.certify(number, at, terms, expert_review_ref)
        return contract

    return run


def reject(
    contract_id: UUID, actor: PointActor, reason_code: str, reason: str, at: datetime, expected_version: int | None
) -> Command[Contract]:
    def run(uow: UnitOfWork) -> Contract:
        contract = _contract_for(uow, contract_id, actor, expected_version)
        contract.reject(reason_code, reason, at)
        return contract

    return run


def withdraw(
    contract_id: UUID, actor: PointActor, reason: str | None, at: datetime, expected_version: int | None
) -> Command[Contract]:
    def run(uow: UnitOfWork) -> Contract:
        contract = _contract_for(uow, contract_id, actor, expected_version)
        contract.withdraw(reason, at)
        return contract

    return run


def amend(
    contract_id: UUID,
    actor: PointActor,
    changes: dict[str, Any],
    reason: str,
    at: datetime,
    expert_review_ref: str | None,
    expected_version: int | None,
) -> Command[Contract]:
    def run(uow: UnitOfWork) -> Contract:
        contract = _contract_for(uow, contract_id, actor, expected_version)
        # amend() validates the new terms first; a refusal after it discards this command's copy of the contract.
        amended = contract.amend(changes, reason, at, expert_review_ref)
        _check_jurisdiction(actor, amended)
        return contract

    return run


def revoke(
    contract_id: UUID, actor: PointActor, reason: str, at: datetime, expected_version: int | None
) -> Command[Contract]:
    def run(uow: UnitOfWork) -> Contract:
        contract = _contract_for(uow, contract_id, actor, expected_version)
        contract.revoke(reason, at)
        return contract

    return run


def _contract_for(uow: UnitOfWork, contract_id: UUID, actor: PointActor, expected_version: int | None) -> Contract:
    contract = uow.get(contract_id)
    if not isinstance(contract, Contract):
        raise ContractNotFound(str(contract_id))
    _check_jurisdiction(actor, contract.terms)
    if expected_version is not None and expected_version != contract.version:
        raise StaleVersion(expected_version, contract.version)
    return contract


def _check_jurisdiction(actor: PointActor, terms: Terms) -> None:
    if not may_register(actor.jurisdiction, terms):
        raise OutsideJurisdiction(
            f"registration point {actor.registration_prefix} (jurisdiction {actor.jurisdiction}) may only act on "
            "contracts whose seller (or, for a seller outside Ningxia, buyer) is located in its jurisdiction"
        )
