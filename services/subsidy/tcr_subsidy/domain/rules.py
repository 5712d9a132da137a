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
from tcr_shared.language.vocabulary import BASES, CAP_SCOPES, CATEGORIES, PARTY_KINDS, PARTY_ROLES, PROGRAMMES

ROLES = PARTY_ROLES


class RuleSetError(ValueError):
    """A rule set that cannot be used; `field` names the offending field (e.g. `programmes[0].rate`) when known."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


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
        """The shape `parse_rule_set` reads back (`beneficiary_role`/`beneficiary_kinds` are the API's names for a
        rule file's `role`/`kinds`), so a rule set fetched from the API can be changed and posted as a candidate."""
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


def _decimal(value: Any, where: str, field: str, *, places: Decimal | None = None) -> Decimal:
    if not isinstance(value, str):
        raise RuleSetError(f"{where} must be a quoted decimal string, not {type(value).__name__} {value!r}", field)
    try:
        number = Decimal(value)
    except InvalidOperation as exc:
        raise RuleSetError(f"{where}: {value!r} is not a decimal", field) from exc
    if not number.is_finite() or number < 0:
        raise RuleSetError(f"{where}: {value!r} must be a non-negative decimal", field)
    if places is not None and number != number.quantize(places):
        raise RuleSetError(f"{where}: {value!r} has more than two decimals", field)
    return number


def _either(p: dict[str, Any], api_name: str, file_name: str, field: str, where: str) -> Any:
    """A programme's `beneficiary_role`/`role` (or `beneficiary_kinds`/`kinds`): either spelling, not two values."""
    if api_name in p and file_name in p and p[api_name] != p[file_name]:
        raise RuleSetError(f"{where}: {api_name} and {file_name} disagree", field)
    if api_name in p:
        return p[api_name]
    if file_name in p:
        return p[file_name]
    raise RuleSetError(f"{where}: missing key {api_name!r}", field)


def _names(value: Any, allowed: tuple[str, ...], where: str, field: str) -> tuple[str, ...]:
    """A non-empty list of distinct names from `allowed` (categories, party kinds)."""
    if not isinstance(value, list) or not value:
        raise RuleSetError(f"{where} must be a non-empty list", field)
    for i, name in enumerate(value):
        if name not in allowed:
            raise RuleSetError(f"{where}[{i}]: unknown {name!r} (one of {', '.join(allowed)})", f"{field}[{i}]")
    if len(set(value)) != len(value):
        raise RuleSetError(f"{where} lists a name twice", field)
    return tuple(value)


def _programme(p: Any, i: int, where: str, seen: set[str]) -> ProgrammeRule:
    at, f = f"{where}: programmes[{i}]", f"programmes[{i}]"
    if not isinstance(p, dict):
        raise RuleSetError(f"{at} must be a mapping", f)
    for key in ("programme", "clause", "base", "rate", "cap", "cap_scope"):
        if key not in p:
            raise RuleSetError(f"{at}: missing key {key!r}", f"{f}.{key}")
    name = p["programme"]
    if name not in PROGRAMMES:
        raise RuleSetError(f"{at}: unknown programme {name!r} (one of {', '.join(PROGRAMMES)})", f"{f}.programme")
    if name in seen:
        raise RuleSetError(f"{at}: programme {name!r} appears twice", f"{f}.programme")
    seen.add(name)
    role = _either(p, "beneficiary_role", "role", f"{f}.beneficiary_role", at)
    if role not in ROLES:
        raise RuleSetError(f"{at}: role must be one of {ROLES}", f"{f}.beneficiary_role")
    kinds = _names(
        _either(p, "beneficiary_kinds", "kinds", f"{f}.beneficiary_kinds", at),
        PARTY_KINDS,
        f"{at}.kinds",
        f"{f}.beneficiary_kinds",
    )
    if p["base"] not in BASES:
        raise RuleSetError(f"{at}: base must be one of {BASES}", f"{f}.base")
    if p["cap_scope"] not in CAP_SCOPES:
        raise RuleSetError(f"{at}: cap_scope must be one of {CAP_SCOPES}", f"{f}.cap_scope")
    rate = _decimal(p["rate"], f"{at}.rate", f"{f}.rate")
    if rate > 1:
        raise RuleSetError(f"{at}.rate must not exceed 1", f"{f}.rate")
    return ProgrammeRule(
        programme=name,
        clause=str(p["clause"]),
        role=role,
        kinds=kinds,
        base=p["base"],
        rate=rate,
        cap=_decimal(p["cap"], f"{at}.cap", f"{f}.cap", places=FEN),
        cap_scope=p["cap_scope"],
    )


def _effective_from(raw: dict[str, Any], where: str) -> date:
    effective = raw["effective_from"]
    if isinstance(effective, str):
        try:
            effective = date.fromisoformat(effective)
        except ValueError as exc:
            raise RuleSetError(f"{where}: effective_from must be a date (YYYY-MM-DD)", "effective_from") from exc
    if not isinstance(effective, date) or isinstance(effective, datetime):
        raise RuleSetError(f"{where}: effective_from must be a date (YYYY-MM-DD)", "effective_from")
    return effective


def parse_rule_set(raw: dict[str, Any], where: str = "rule set") -> RuleSet:
    """A rule set from a rule file's mapping or from the API's shape (`RuleSet.as_dict`); keys the API adds
    (`effective_until`, `in_force`, `future`) are the caller's to check."""
    if not isinstance(raw, dict):
        raise RuleSetError(f"{where} must be a mapping", None)
    for key in ("id", "effective_from", "eligible_categories", "programmes"):
        if key not in raw:
            raise RuleSetError(f"{where}: missing key {key!r}", key)
    effective = _effective_from(raw, where)
    if not isinstance(raw["programmes"], list) or not raw["programmes"]:
        raise RuleSetError(f"{where}: programmes must be a non-empty list", "programmes")
    seen: set[str] = set()
    programmes = [_programme(p, i, where, seen) for i, p in enumerate(raw["programmes"])]
    prefix = str(raw.get("beneficiary_region_prefix", "64"))
    if not prefix.isdigit() or len(prefix) > 6:
        raise RuleSetError(f"{where}: beneficiary_region_prefix must be digits", "beneficiary_region_prefix")
    return RuleSet(
        id=str(raw["id"]),
        title=str(raw.get("title", raw["id"])),
        effective_from=effective,
        eligible_categories=_names(
            raw["eligible_categories"], CATEGORIES, f"{where}: eligible_categories", "eligible_categories"
        ),
        region_prefix=prefix,
        programmes=tuple(programmes),
    )


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
