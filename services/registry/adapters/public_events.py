"""Domain events as partners see them: CloudEvents of type tcr.registry.contract.<name>.v1, with the terms
stripped of personal data. The mapping is the one place the public contract meets the domain."""
from __future__ import annotations

import uuid
from datetime import timezone
from typing import Any

from tcr_shared.events.envelope import FeedEvent
from tcr_shared.events.registry import SOURCE
from tcr_registry.domain.contract import Contract
from tcr_registry.domain.terms import Terms

_NAMESPACE = uuid.UUID("6f0c7f1e-6a53-4c35-9d5e-2f3b1a7c9e01")

_TYPES: dict[type, tuple[str, str]] = {
    Contract.Submitted: ("submitted", "submitted"),
    Contract.Certified: ("certified", "certified"),
    Contract.Rejected: ("rejected", "rejected"),
    Contract.Withdrawn: ("withdrawn", "withdrawn"),
    Contract.Amended: ("amended", ""),
    Contract.Revoked: ("revoked", "revoked"),
}


def event_id(originator_id: uuid.UUID, version: int) -> str:
    """Stable across reads, restarts and replays: partners de-duplicate on it."""
    return str(uuid.uuid5(_NAMESPACE, f"{originator_id}/{version}"))


def is_public(domain_event: Any) -> bool:
    return type(domain_event) in _TYPES


def public_type(domain_event: Any) -> str:
    return f"tcr.registry.contract.{_TYPES[type(domain_event)][0]}.v1"


def event_data(domain_event: Any, *, personal: bool = False) -> dict[str, Any]:
    """The event's data; `personal` keeps individuals' names and ids (for points and admins only)."""
    data = _data(domain_event, personal)
    data["status"] = _TYPES[type(domain_event)][1] or domain_event.status
    return data


def to_feed_event(domain_event: Any, position: int) -> FeedEvent:
    return FeedEvent(
        id=event_id(domain_event.originator_id, domain_event.originator_version),
        source=SOURCE,
        type=public_type(domain_event),
        time=domain_event.timestamp.astimezone(timezone.utc).isoformat(),
        subject=str(domain_event.originator_id),
        position=position,
        data=event_data(domain_event),
    )


def _terms(record: dict[str, Any], personal: bool) -> dict[str, Any]:
    return Terms.from_record(record).to_record() if personal else Terms.from_record(record).public()


def _data(e: Any, personal: bool) -> dict[str, Any]:
    data: dict[str, Any] = {"contract_id": str(e.originator_id), "terms": _terms(e.terms, personal)}
    if isinstance(e, Contract.Submitted):
        data.update(point_id=e.point_id, submitted_at=e.submitted_at)
    elif isinstance(e, Contract.Certified):
        data.update(registration_number=e.registration_number, certified_at=e.certified_at,
                    policy_year=e.policy_year, expert_review_ref=e.expert_review_ref)
    elif isinstance(e, Contract.Rejected):
        data.update(reason_code=e.reason_code, reason=e.reason, rejected_at=e.rejected_at)
    elif isinstance(e, Contract.Withdrawn):
        data.update(reason=e.reason, withdrawn_at=e.withdrawn_at)
    elif isinstance(e, Contract.Amended):
        data.update(reason=e.reason, changed_fields=e.changed_fields, amended_at=e.amended_at,
                    previous_terms=_terms(e.previous_terms, personal),
                    registration_number=e.registration_number, policy_year=e.policy_year)
    elif isinstance(e, Contract.Revoked):
        data.update(reason=e.reason, revoked_at=e.revoked_at, registration_number=e.registration_number,
                    policy_year=e.policy_year)
    return data
