"""A contract's terms as the subsidy decision reads them from a registry event's data (the registry's schema,
tcr_shared.language.events.registry), checked by hand so the domain needs no schema library. Data that does not
match raises ValueError/TypeError/KeyError, which the engine reports as a malformed event."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any

from tcr_shared.language.identifiers import canonical_credit_code, canonical_result_id
from tcr_shared.language.vocabulary import CATEGORIES, CONSIDERATIONS, PARTY_KINDS


@dataclass(frozen=True)
class Party:
    name: str | None
    kind: str
    credit_code: str | None = None
    region: str | None = None
    country: str | None = None


@dataclass(frozen=True)
class Terms:
    category: str
    amount: str  # money on the wire: a two-decimal string
    technology_amount: str
    seller: Party
    buyer: Party
    intermediary: Party | None = None
    result_id: str | None = None


NUL, NUL_STANDS_IN = "\x00", "\ufffd"


def plain_text(value: str) -> str:
    """Registry text as this service keeps it. Old registry events may carry U+0000 (the registry accepted it
    before its text rule), which PostgreSQL TEXT cannot hold: it becomes U+FFFD (the replacement character)
    here, where text enters the service, so that every store, key and award event carries the same form and a
    follower never stops on such an event. Every other character is kept as the registry recorded it."""
    return value.replace(NUL, NUL_STANDS_IN) if NUL in value else value


def _text(data: dict[str, Any], key: str, *, required: bool = True, nullable: bool = True) -> str | None:
    if required and key not in data:
        raise KeyError(key)
    value = data.get(key)
    if value is None and nullable:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{key} must be a string, not {type(value).__name__}")
    return plain_text(value)


def optional_text(value: Any) -> str | None:
    """A free-text field outside the terms (a reason, a registration number), or None when absent."""
    return plain_text(value) if isinstance(value, str) else None


def _one_of(data: dict[str, Any], key: str, allowed: tuple[str, ...]) -> str:
    value = data[key]
    if value not in allowed:
        raise ValueError(f"{key} {value!r} is not one of {', '.join(allowed)}")
    return value


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"{where} must be an object, not {type(value).__name__}")
    return value


@lru_cache(maxsize=65536)  # the same parties and projects recur event after event
def canonical_text(value: Any, canonical: Callable[[str], str]) -> str | None:
    """Old events may carry a code as typed (`9164-...1l`): every cap key, ledger key and beneficiary uses the
    canonical form, so a rebuild over old events pays one party (one project) once. None when absent or empty."""
    if not isinstance(value, str) or not value:
        return None
    return plain_text(canonical(value)) or None


def read_party(value: Any, where: str) -> Party:
    data = _mapping(value, where)
    return Party(
        name=_text(data, "name"),
        kind=_one_of(data, "kind", PARTY_KINDS),
        credit_code=canonical_text(_text(data, "credit_code", required=False), canonical_credit_code),
        region=_text(data, "region", required=False),
        country=_text(data, "country", required=False),
    )


def read_terms(value: Any) -> Terms:
    """The terms of a registry event, checked as strictly as the registry's published schema."""
    data = _mapping(value, "terms")
    _text(data, "title", nullable=False)
    _text(data, "subcategory")
    date.fromisoformat(_text(data, "signed_on", nullable=False) or "")
    _one_of(data, "consideration", CONSIDERATIONS)
    intermediary = data.get("intermediary")
    return Terms(
        category=_one_of(data, "category", CATEGORIES),
        amount=_text(data, "amount", nullable=False) or "",
        technology_amount=_text(data, "technology_amount", nullable=False) or "",
        seller=read_party(data["seller"], "seller"),
        buyer=read_party(data["buyer"], "buyer"),
        intermediary=None if intermediary is None else read_party(intermediary, "intermediary"),
        result_id=canonical_text(_text(data, "result_id", required=False), canonical_result_id),
    )
