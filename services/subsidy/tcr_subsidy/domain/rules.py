"""Rule sets as data: programmes, rates and caps, versioned by effective date.

A rule set is data (the package's rules/*.yaml, read by adapters/rule_files.py) parsed by `parse_rule_set`. The rule set that decides a contract is the one with
the latest `effective_from` on or before the contract's certification date in Asia/Shanghai. Amendments and
revocations are decided under the rule set that decided the certification.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from tcr_shared.language.money import FEN
from tcr_shared.language.policy_time import SHANGHAI
from tcr_shared.language.vocabulary import BASES, CAP_SCOPES, PARTY_ROLES, PROGRAMMES

ROLES = PARTY_ROLES


class RuleSetError(ValueError):
    """A rule set file that cannot be used."""


@dataclass(frozen=True)
class ProgrammeRule:
    programme: str
    clause: str
    role: str
    kinds: tuple[str, ...]
    base: str
    rate: Decimal
    cap: Decimal
    cap_scope: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "programme": self.programme,
            "clause": self.clause,
            "beneficiary_role": self.role,
            "beneficiary_kinds": list(self.kinds),
            "base": self.base,
            "rate": str(self.rate),
            "cap": str(self.cap),
            "cap_scope": self.cap_scope,
        }


@dataclass(frozen=True)
class RuleSet:
    id: str
    title: str
    effective_from: date
    eligible_categories: tuple[str, ...]
    region_prefix: str
    programmes: tuple[ProgrammeRule, ...]

    def programme(self, name: str) -> ProgrammeRule | None:
        return next((p for p in self.programmes if p.programme == name), None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "effective_from": self.effective_from.isoformat(),
            "eligible_categories": list(self.eligible_categories),
            "beneficiary_region_prefix": self.region_prefix,
            "programmes": [p.as_dict() for p in self.programmes],
        }


def _decimal(value: Any, where: str, *, places: Decimal | None = None) -> Decimal:
    if not isinstance(value, str):
        raise RuleSetError(f"{where} must be a quoted decimal string, not {type(value).__name__} {value!r}")
    try:
        number = Decimal(value)
    except InvalidOperation as exc:
        raise RuleSetError(f"{where}: {value!r} is not a decimal") from exc
    if not number.is_finite() or number < 0:
        raise RuleSetError(f"{where}: {value!r} must be a non-negative decimal")
    if places is not None and number != number.quantize(places):
        raise RuleSetError(f"{where}: {value!r} has more than two decimals")
    return number


def parse_rule_set(raw: dict[str, Any], where: str = "rule set") -> RuleSet:
    try:
        rs_id = str(raw["id"])
        effective = raw["effective_from"]
        if isinstance(effective, str):
            effective = date.fromisoformat(effective)
        if not isinstance(effective, date) or isinstance(effective, datetime):
            raise RuleSetError(f"{where}: effective_from must be a date (YYYY-MM-DD)")
        programmes = []
        seen = set()
        for i, p in enumerate(raw["programmes"]):
            at = f"{where}: programmes[{i}]"
            name = p["programme"]
            if name not in PROGRAMMES:
                raise RuleSetError(f"{at}: unknown programme {name!r} (one of {', '.join(PROGRAMMES)})")
            if name in seen:
                raise RuleSetError(f"{at}: programme {name!r} appears twice")
            seen.add(name)
            if p["role"] not in ROLES:
                raise RuleSetError(f"{at}: role must be one of {ROLES}")
            if p["base"] not in BASES:
                raise RuleSetError(f"{at}: base must be one of {BASES}")
            if p["cap_scope"] not in CAP_SCOPES:
                raise RuleSetError(f"{at}: cap_scope must be one of {CAP_SCOPES}")
            rate = _decimal(p["rate"], f"{at}.rate")
            if rate > 1:
                raise RuleSetError(f"{at}.rate must not exceed 1")
            programmes.append(
                ProgrammeRule(
                    programme=name,
                    clause=str(p["clause"]),
                    role=p["role"],
                    kinds=tuple(p["kinds"]),
                    base=p["base"],
                    rate=rate,
                    cap=_decimal(p["cap"], f"{at}.cap", places=FEN),
                    cap_scope=p["cap_scope"],
                )
            )
        return RuleSet(
            id=rs_id,
            title=str(raw.get("title", rs_id)),
            effective_from=effective,
            eligible_categories=tuple(raw["eligible_categories"]),
            region_prefix=str(raw.get("beneficiary_region_prefix", "64")),
            programmes=tuple(programmes),
        )
    except KeyError as exc:
        raise RuleSetError(f"{where}: missing key {exc.args[0]!r}") from exc


class RuleBook:
    """All rule sets, ordered by effective date; picks the one in force on a date."""

    def __init__(self, rule_sets: list[RuleSet]) -> None:
        if not rule_sets:
            raise RuleSetError("no rule sets")
        ordered = sorted(rule_sets, key=lambda r: r.effective_from)
        ids = [r.id for r in ordered]
        if len(set(ids)) != len(ids):
            raise RuleSetError(f"rule set ids must be unique: {ids}")
        dates = [r.effective_from for r in ordered]
        if len(set(dates)) != len(dates):
            raise RuleSetError("two rule sets take effect on the same date")
        self.rule_sets = tuple(ordered)
        self._dates = dates
        self._by_id = {r.id: r for r in ordered}

    def by_id(self, rule_set_id: str) -> RuleSet:
        return self._by_id[rule_set_id]

    def in_force_on(self, day: date) -> RuleSet | None:
        index = bisect_right(self._dates, day) - 1
        return self.rule_sets[index] if index >= 0 else None

    def in_force_at(self, moment: datetime) -> RuleSet | None:
        return self.in_force_on(moment.astimezone(SHANGHAI).date())

    def effective_until(self, rule_set: RuleSet) -> date | None:
        """The day the next rule set takes over (exclusive end), or None for the latest."""
        index = self.rule_sets.index(rule_set)
        return self.rule_sets[index + 1].effective_from if index + 1 < len(self.rule_sets) else None
