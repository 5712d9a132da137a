"""The technology contract: submitted, then certified or rejected or withdrawn; a certified one may be
amended or revoked. Every change is an event; nothing is ever deleted."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from eventsourcing.domain import Aggregate

from tcr_registry.domain.errors import InvalidTerms, NotAllowedInState
from tcr_registry.domain.terms import Terms
from tcr_shared.language.money import format_money
from tcr_shared.language.policy_time import SHANGHAI, policy_year
from tcr_shared.language.vocabulary import CERTIFIED, REJECTED, REVOKED, SUBMITTED, WITHDRAWN

_PAST = {"certify": "certified", "reject": "rejected", "withdraw": "withdrawn", "amend": "amended", "revoke": "revoked"}


class Contract(Aggregate):
    class Submitted(Aggregate.Created):
        point_id: str
        terms: dict
        submitted_at: str

    class Certified(Aggregate.Event):
        """v2 (2026 national rules) added the expert review reference; v1 events load with none."""

        class_version = 2
        registration_number: str
        certified_at: str
        policy_year: int
        terms: dict
        expert_review_ref: str | None

        @staticmethod
        def upcast_v1_v2(state: dict) -> None:
            state["expert_review_ref"] = None

        def apply(self, contract: Contract) -> None:
            contract.status = CERTIFIED
            contract.registration_number = self.registration_number
            contract.certified_at = self.certified_at
            contract.policy_year = self.policy_year
            contract.expert_review_ref = self.expert_review_ref
            contract.terms_record = self.terms

    class Rejected(Aggregate.Event):
        reason_code: str
        reason: str
        rejected_at: str
        terms: dict

        def apply(self, contract: Contract) -> None:
            contract.status = REJECTED

    class Withdrawn(Aggregate.Event):
        reason: str | None
        withdrawn_at: str
        terms: dict

        def apply(self, contract: Contract) -> None:
            contract.status = WITHDRAWN

    class Amended(Aggregate.Event):
        reason: str
        terms: dict
        previous_terms: dict
        changed_fields: list
        amended_at: str
        status: str
        registration_number: str | None
        policy_year: int | None
        expert_review_ref: str | None = None

        def apply(self, contract: Contract) -> None:
            contract.terms_record = self.terms
            if self.expert_review_ref:
                contract.expert_review_ref = self.expert_review_ref

    class Revoked(Aggregate.Event):
        """Carries what it revokes, so that a follower never needs an earlier event to undo its effects."""

        reason: str
        revoked_at: str
        terms: dict
        registration_number: str
        policy_year: int

        def apply(self, contract: Contract) -> None:
            contract.status = REVOKED

    def __init__(self, point_id: str, terms: dict, submitted_at: str) -> None:
        self.point_id = point_id
        self.terms_record = terms
        self.submitted_at = submitted_at
        self.status = SUBMITTED
        self.registration_number: str | None = None
        self.certified_at: str | None = None
        self.policy_year: int | None = None
        self.expert_review_ref: str | None = None

    # The terms read from the current record, kept in a slot (not in __dict__, which the library's __eq__ compares
    # and its repr shows: only state the events made is there). A certification read them twice per contract.
    __slots__ = ("_terms_read",)

    @property
    def terms(self) -> Terms:
        record = self.terms_record
        read = getattr(self, "_terms_read", None)
        if read is None or read[0] is not record:  # an event since replaced the record: read the new one
            read = self._terms_read = (record, Terms.from_record(record))
        return read[1]

    @classmethod
    def submit(cls, contract_id, point_id: str, terms: Terms, at: datetime) -> Contract:
        terms.validate(today=at.astimezone(SHANGHAI).date())
        return cls._create(
            cls.Submitted, id=contract_id, point_id=point_id, terms=terms.to_record(), submitted_at=at.isoformat()
        )

    def check_certifiable(
        self, certified_at: datetime, now: datetime, technology_amount: Decimal | None, expert_review_ref: str | None
    ) -> Terms:
        """Everything certify() checks, without changing anything: the caller issues a number only after."""
        self._require(SUBMITTED, "certify")
        terms = self.terms
        if technology_amount is not None:
            terms = terms.with_changes({"technology_amount": format_money(technology_amount)})
            terms.validate(today=now.astimezone(SHANGHAI).date())
        errors = []
        if certified_at > now:
            errors.append(("certified_at", f"must not be in the future (now is {now.isoformat()})"))
        if certified_at.astimezone(SHANGHAI).date() < terms.signed_on:
            errors.append(
                (
                    "certified_at",
                    f"must not be before the contract was signed (signed_on {terms.signed_on.isoformat()})",
                )
            )
        if terms.needs_expert_review and not expert_review_ref:
            errors.append(
                (
                    "expert_review_ref",
                    "is required when the technology amount is 5,000,000.00 or more (national rules, 2026)",
                )
            )
        if errors:
            raise InvalidTerms(errors)
        return terms

    def certify(
        self, registration_number: str, certified_at: datetime, terms: Terms, expert_review_ref: str | None
    ) -> None:
        self._require(SUBMITTED, "certify")
        self.trigger_event(
            self.Certified,
            registration_number=registration_number,
            certified_at=certified_at.isoformat(),
            policy_year=policy_year(certified_at),
            terms=terms.to_record(),
            expert_review_ref=expert_review_ref,
        )

    def reject(self, reason_code: str, reason: str, at: datetime) -> None:
        self._require(SUBMITTED, "reject")
        self.trigger_event(
            self.Rejected, reason_code=reason_code, reason=reason, rejected_at=at.isoformat(), terms=self.terms_record
        )

    def withdraw(self, reason: str | None, at: datetime) -> None:
        self._require(SUBMITTED, "withdraw")
        self.trigger_event(self.Withdrawn, reason=reason, withdrawn_at=at.isoformat(), terms=self.terms_record)

    def amend(self, changes: dict[str, Any], reason: str, at: datetime, expert_review_ref: str | None = None) -> Terms:
        self._require((SUBMITTED, CERTIFIED), "amend")
        before = self.terms
        after = before.with_changes(changes)
        after.validate(today=at.astimezone(SHANGHAI).date(), before=before)
        changed = after.changed_fields(before)
        if not changed:
            raise InvalidTerms([("changes", "the amendment changes nothing")])
        if self.status == CERTIFIED and after.needs_expert_review and not (expert_review_ref or self.expert_review_ref):
            raise InvalidTerms([("expert_review_ref", "is required when the technology amount reaches 5,000,000.00")])
        self.trigger_event(
            self.Amended,
            reason=reason,
            terms=after.to_record(),
            previous_terms=before.to_record(),
            changed_fields=changed,
            amended_at=at.isoformat(),
            status=self.status,
            registration_number=self.registration_number,
            policy_year=self.policy_year,
            expert_review_ref=expert_review_ref,
        )
        return after

    def revoke(self, reason: str, at: datetime) -> None:
        self._require(CERTIFIED, "revoke")
        self.trigger_event(
            self.Revoked,
            reason=reason,
            revoked_at=at.isoformat(),
            terms=self.terms_record,
            registration_number=self.registration_number,
            policy_year=self.policy_year,
        )

    def _require(self, allowed: str | tuple[str, ...], action: str) -> None:
        allowed = (allowed,) if isinstance(allowed, str) else allowed
        if self.status not in allowed:
            raise NotAllowedInState(
                f"a {self.status} contract cannot be {_PAST[action]}; only a {' or '.join(allowed)} contract can"
            )

    @property
    def signed_on(self) -> date:
        return date.fromisoformat(self.terms_record["signed_on"])
