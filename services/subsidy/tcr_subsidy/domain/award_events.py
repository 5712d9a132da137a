"""The public award events (tcr.subsidy.award.*.v1): how a decided change of an award reads on the wire. Ids are
deterministic (uuid5 of the cause, the award and the type), so a replay gives the same events."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields
from decimal import Decimal
from operator import attrgetter
from typing import Any

from tcr_shared.language.identifiers import uuid5_text
from tcr_shared.language.money import ZERO, format_money
from tcr_subsidy.domain.ledger import Award

AWARD_NAMESPACE = uuid.UUID("6f1c9a52-3b0e-4c55-9d67-2f4b8e1d7a10")


@dataclass(frozen=True)
class Cause:
    """The registry event that caused a change."""

    id: str
    type: str
    position: int
    time: str


@dataclass(frozen=True)
class AwardChange:
    """One award decided, adjusted or clawed back (`type` is the AwardEventType), as it stood right after."""

    type: str
    award: Award  # a copy: later events of the same page may change the ledger's award again
    cause: Cause
    cap_used_before: Decimal
    cap_used_after: Decimal
    delta: Decimal
    previous: Decimal | None

    @classmethod
    def of(
        cls,
        type_: str,
        award: Award,
        cause: Cause,
        before: Decimal,
        after: Decimal,
        delta: Decimal,
        previous: Decimal | None,
    ) -> AwardChange:
        return cls(type_, _snapshot(award), cause, before, after, delta, previous)


_AWARD_FIELDS = attrgetter(*(f.name for f in fields(Award)))


def _snapshot(award: Award) -> Award:
    """A shallow copy (every field is immutable), made the cheap way (all fields read at once, in their order):
    this runs once per award event."""
    return Award(*_AWARD_FIELDS(award))


@dataclass(frozen=True)
class AwardEvent:
    id: str
    type: str
    time: str
    subject: str
    award_id: str
    cause_position: int
    data: dict[str, Any]


def uuid5(name: str) -> str:
    return uuid5_text(AWARD_NAMESPACE, name)


def award_id_for(contract_id: str, programme: str, beneficiary: str) -> str:
    return uuid5(f"{contract_id}|{programme}|{beneficiary}")


def award_summary(a: Award) -> dict[str, Any]:
    """An award as readers see it (award list, a contract's awards, and the core of every award event)."""
    return {
        "award_id": a.award_id,
        "contract_id": a.contract_id,
        "registration_number": a.registration_number,
        "beneficiary": a.beneficiary,
        "beneficiary_name": a.beneficiary_name,
        "beneficiary_kind": a.beneficiary_kind,
        "beneficiary_region": a.beneficiary_region,
        "programme": a.programme,
        "policy_year": a.policy_year,
        "rule_set": a.rule_set,
        "clause": a.clause,
        "base": format_money(a.base),
        "rate": str(a.rate),
        "entitlement": format_money(a.entitlement),
        "award": format_money(a.award),
        "status": a.status,
    }


def award_event(change: AwardChange) -> AwardEvent:
    a, cause = change.award, change.cause
    data: dict[str, Any] = {
        **award_summary(a),
        "delta": format_money(change.delta if change.delta != 0 else ZERO),
        "cap": format_money(a.cap),
        "cap_used_before": format_money(change.cap_used_before),
        "cap_used_after": format_money(change.cap_used_after),
        "cause": {"event_id": cause.id, "event_type": cause.type, "position": cause.position},
        "explanation": a.explanation,
    }
    if change.previous is not None:
        data["previous_award"] = format_money(change.previous)
    event_id = uuid5(f"{cause.id}|{a.award_id}|{change.type}")
    return AwardEvent(event_id, change.type, cause.time, a.contract_id, a.award_id, cause.position, data)
