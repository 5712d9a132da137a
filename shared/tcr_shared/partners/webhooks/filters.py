"""What a subscription receives: event types (with `*` wildcards) and regions (prefecture or county codes).

Types: a pattern is a dotted type in which `*` stands for one or more whole segments, e.g.
`tcr.registry.contract.*` or `tcr.*.certified.v1`; `*` alone means every type. A pattern must match at least one
type the publisher actually publishes, so a typo is refused at subscription time rather than silently matching
nothing forever.

Regions: `6401` (a prefecture, 4 digits; `640100` is the same prefecture in 6 digits), `640205` (a county, 6
digits), `6400` / `640000` (the whole region). An event matches when any party of the contract lies within any
of the codes (registry events: seller, buyer, intermediary, and for amendments the terms before the change too,
so a partner learns that a contract left its area); subsidy events match on the beneficiary's region. No regions
means every region.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from tcr_shared.language.regions import PROVINCE_PREFIXES, is_known_region, lies_within, ningxia_regions

_PATTERN_CHARS = re.compile(r"^[a-z0-9_*]+(\.[a-z0-9_*]+)*$")


class FilterError(ValueError):
    """A malformed or unknown filter; `field` names the request field for the problem's `errors` list."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@lru_cache(maxsize=256)
def _compile(pattern: str) -> re.Pattern[str]:
    if pattern == "*":
        return re.compile(r"^.+$")
    parts = [r"[a-z0-9_]+(?:\.[a-z0-9_]+)*" if p == "*" else re.escape(p) for p in pattern.split(".")]
    return re.compile("^" + r"\.".join(parts) + "$")


def type_matches(pattern: str, event_type: str) -> bool:
    return bool(_compile(pattern).match(event_type))


def validate_event_types(patterns: Sequence[str], known: Iterable[str]) -> list[str]:
    known = list(known)
    if not patterns:
        raise FilterError(
            "event_types", "give at least one event type or pattern (for example 'tcr.registry.contract.*')"
        )
    cleaned: list[str] = []
    for i, pattern in enumerate(patterns):
        field = f"event_types.{i}"
        if not isinstance(pattern, str) or not _PATTERN_CHARS.match(pattern) or "**" in pattern:
            raise FilterError(
                field, f"'{pattern}' is not a dotted event type or pattern ('*' stands for whole segments)"
            )
        for segment in pattern.split("."):
            if "*" in segment and segment != "*":
                raise FilterError(field, f"'{pattern}': '*' must stand for a whole segment, not part of one")
        if not any(type_matches(pattern, t) for t in known):
            raise FilterError(
                field, f"'{pattern}' matches no event type this service publishes: {', '.join(sorted(known))}"
            )
        if pattern not in cleaned:
            cleaned.append(pattern)
    return cleaned


def validate_regions(codes: Sequence[str] | None) -> list[str]:
    if not codes:
        return []
    cleaned: list[str] = []
    for i, code in enumerate(codes):
        field = f"regions.{i}"
        if not isinstance(code, str) or not code.isdigit() or len(code) not in (4, 6):
            raise FilterError(
                field,
                f"'{code}' is not a region code: give a prefecture (4 digits, e.g. 6401) "
                "or a county (6 digits, e.g. 640205)",
            )
        if code.startswith("64"):
            known = code in ("6400", "640000") or (
                f"{code}00" in ningxia_regions() if len(code) == 4 else code in ningxia_regions()
            )
        else:
            known = code[:2] in PROVINCE_PREFIXES and (len(code) == 4 or is_known_region(code))
        if not known:
            raise FilterError(field, f"'{code}' is not a known GB/T 2260 prefecture or county code")
        if code not in cleaned:
            cleaned.append(code)
    return cleaned


def event_regions(event_type: str, data: dict[str, Any]) -> set[str]:
    """The region codes an event is about (parties' regions, or the beneficiary's region)."""
    regions: set[str] = set()
    for terms in (data.get("terms"), data.get("previous_terms")):
        if isinstance(terms, dict):
            for role in ("seller", "buyer", "intermediary"):
                party = terms.get(role)
                if isinstance(party, dict) and party.get("region"):
                    regions.add(party["region"])
    if data.get("beneficiary_region"):
        regions.add(data["beneficiary_region"])
    return regions


@dataclass(frozen=True)
class SubscriptionFilter:
    event_types: tuple[str, ...]
    regions: tuple[str, ...] = ()

    def matches(self, event_type: str, data: dict[str, Any]) -> bool:
        if not any(type_matches(p, event_type) for p in self.event_types):
            return False
        if not self.regions:
            return True
        areas = [a + "00" if len(a) == 4 else a for a in self.regions]  # 6401 -> 640100, 6400 -> 640000
        return any(lies_within(code, area) for code in event_regions(event_type, data) for area in areas)
