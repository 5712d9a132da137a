"""Domain events as partners see them: CloudEvents of type tcr.registry.contract.<name>.v1, with the terms
stripped of personal data. The mapping is the one place the public contract meets the domain."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date
from decimal import Decimal
from typing import Any

import orjson
from pydantic import TypeAdapter

from tcr_registry.domain.contract import Contract
from tcr_registry.domain.terms import Party, Terms
from tcr_shared.language.events.envelope import FeedEvent
from tcr_shared.language.events.registry import SOURCE
from tcr_shared.language.identifiers import canonical_credit_code, canonical_result_id, uuid5_text
from tcr_shared.language.money import format_money
from tcr_shared.language.vocabulary import (
    CERTIFIED,
    REJECTED,
    REVOKED,
    SUBMITTED,
    WITHDRAWN,
    RegistryEventType,
)

_NAMESPACE = uuid.UUID("6f0c7f1e-6a53-4c35-9d5e-2f3b1a7c9e01")

# Each public domain event class: its CloudEvents type, and the status it leaves (None: the status it keeps).
_TYPES: dict[type, tuple[str, str | None]] = {
    Contract.Submitted: (RegistryEventType.SUBMITTED, SUBMITTED),
    Contract.Certified: (RegistryEventType.CERTIFIED, CERTIFIED),
    Contract.Rejected: (RegistryEventType.REJECTED, REJECTED),
    Contract.Withdrawn: (RegistryEventType.WITHDRAWN, WITHDRAWN),
    Contract.Amended: (RegistryEventType.AMENDED, None),
    Contract.Revoked: (RegistryEventType.REVOKED, REVOKED),
}


def event_id(originator_id: uuid.UUID | str, version: int) -> str:
    """Stable across reads, restarts and replays: partners de-duplicate on it."""
    return uuid5_text(_NAMESPACE, f"{originator_id}/{version}")


def is_public(domain_event: Any) -> bool:
    return type(domain_event) in _TYPES


def is_public_class(cls: type) -> bool:
    """Whether events of this class are public (lets the feed skip decoding the others)."""
    return cls in _TYPES


def public_type(domain_event: Any) -> str:
    return _TYPES[type(domain_event)][0]


def event_data(domain_event: Any, *, personal: bool = False) -> dict[str, Any]:
    """The event's data; `personal` keeps individuals' names and ids (for points and admins only)."""
    data = _data(domain_event, personal)
    data["status"] = _TYPES[type(domain_event)][1] or domain_event.status
    return data


def to_feed_event(domain_event: Any, position: int) -> FeedEvent:
    return FeedEvent(**_feed_fields(domain_event, position))


def _feed_fields(domain_event: Any, position: int) -> dict[str, Any]:
    """FeedEvent's fields in its order (the order its JSON has)."""
    subject = str(domain_event.originator_id)
    names = _TYPES[type(domain_event)]
    data = _data(domain_event, False, subject)
    data["status"] = names[1] or domain_event.status
    return {
        "specversion": "1.0",
        "id": event_id(subject, domain_event.originator_version),
        "source": SOURCE,
        "type": names[0],
        "time": domain_event.timestamp.astimezone(UTC).isoformat(),
        "subject": subject,
        "datacontenttype": "application/json",
        "position": position,
        "data": data,
    }


_FEED_EVENT = TypeAdapter(FeedEvent)


def render(event: FeedEvent) -> bytes:
    """The event's JSON exactly as it appears inside a served FeedPage (pydantic's serializer, as FastAPI's)."""
    return _FEED_EVENT.dump_json(event)


# What orjson writes as pydantic does: str, int, float, bool, None, lists and dicts with str keys (both write
# UTF-8 unescaped, the same escapes, the shortest round-trip float). Anything else (dates, subclasses,
# dataclasses, non-str keys, text with lone surrogates...) raises, and the event is then rendered by pydantic:
# the bytes are the same either way (tests/registry/test_feed_rendering.py compares them).
_PLAIN_JSON = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS


def _unusual(value: Any) -> Any:
    raise TypeError(type(value).__name__)


def render_event(domain_event: Any, position: int) -> tuple[str, bytes]:
    """(type, JSON) of a public event at `position`: the bytes `render(to_feed_event(...))` gives, without
    building and validating the FeedEvent (about a fifth of a first read's time went there)."""
    fields = _feed_fields(domain_event, position)
    try:
        return fields["type"], orjson.dumps(fields, default=_unusual, option=_PLAIN_JSON)
    except TypeError:
        return fields["type"], render(FeedEvent(**fields))


def _terms(record: dict[str, Any], personal: bool) -> dict[str, Any]:
    if personal:
        return Terms.from_record(record).to_record()
    try:
        return _public_terms(record)
    except Exception:  # anything unusual: the domain's own mapping decides (and raises as it would)
        return Terms.from_record(record).public()


# -- the public terms, straight from the stored record ---------------------------------------------------------
# `Terms.from_record(record).public()` builds two frozen dataclasses and parses every amount, for each event of
# the feed. The functions below give the same dict (same keys, same order, same values) from the record itself;
# anything they do not recognise as canonical goes through the domain's mapping instead. Credit codes and result
# ids are canonicalised here as in Terms.from_record: events stored before the rule keep their bytes, but the feed
# (hence subsidy caps, ledgers and reporting) sees one spelling per enterprise and per project.
_PARTY_FIELDS = frozenset({"name", "kind", "credit_code", "region", "country", "id_number"})
_CANONICAL_MONEY = re.compile(r"(?:0|[1-9][0-9]{0,17})\.[0-9]{2}")


def _money(value: Any) -> str:
    if type(value) is str and _CANONICAL_MONEY.fullmatch(value):
        return value  # already what format_money(Decimal(value)) returns
    return format_money(Decimal(value))


def _public_party(record: Any) -> dict[str, Any]:
    if type(record) is not dict or "name" not in record or "kind" not in record or not _PARTY_FIELDS.issuperset(record):
        return Party.from_record(record).public()
    kind = record["kind"]
    code = record.get("credit_code")
    return {
        "name": None if kind == "individual" else record["name"],
        "kind": kind,
        "credit_code": canonical_credit_code(code) if code else code,
        "region": record.get("region"),
        "country": record.get("country"),
    }


def _public_terms(record: dict[str, Any]) -> dict[str, Any]:
    if type(record) is not dict:
        return Terms.from_record(record).public()
    intermediary = record.get("intermediary")
    return {
        "title": record["title"],
        "category": record["category"],
        "subcategory": record.get("subcategory"),
        "signed_on": date.fromisoformat(record["signed_on"]).isoformat(),
        "amount": _money(record["amount"]),
        "technology_amount": _money(record["technology_amount"]),
        "consideration": record["consideration"],
        "seller": _public_party(record["seller"]),
        "buyer": _public_party(record["buyer"]),
        "result_id": canonical_result_id(result_id) if (result_id := record.get("result_id")) else None,
        "intermediary": _public_party(intermediary) if intermediary else None,
    }


def _data(e: Any, personal: bool, contract_id: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"contract_id": contract_id or str(e.originator_id), "terms": _terms(e.terms, personal)}
    if isinstance(e, Contract.Submitted):
        data.update(point_id=e.point_id, submitted_at=e.submitted_at)
    elif isinstance(e, Contract.Certified):
        data.update(
            registration_number=e.registration_number,
            certified_at=e.certified_at,
            policy_year=e.policy_year,
            expert_review_ref=e.expert_review_ref,
        )
    elif isinstance(e, Contract.Rejected):
        data.update(reason_code=e.reason_code, reason=e.reason, rejected_at=e.rejected_at)
    elif isinstance(e, Contract.Withdrawn):
        data.update(reason=e.reason, withdrawn_at=e.withdrawn_at)
    elif isinstance(e, Contract.Amended):
        data.update(
            reason=e.reason,
            changed_fields=e.changed_fields,
            amended_at=e.amended_at,
            previous_terms=_terms(e.previous_terms, personal),
            registration_number=e.registration_number,
            policy_year=e.policy_year,
        )
    elif isinstance(e, Contract.Revoked):
        data.update(
            reason=e.reason,
            revoked_at=e.revoked_at,
            registration_number=e.registration_number,
            policy_year=e.policy_year,
        )
    return data
