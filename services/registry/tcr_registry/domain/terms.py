"""A contract's terms: parties, category and amounts, and the rules they must satisfy."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from typing import Any

from tcr_registry.domain.errors import InvalidTerms
from tcr_shared.language.identifiers import (
    canonical_credit_code,
    canonical_result_id,
    credit_code_problem,
    id_number_problem,
)
from tcr_shared.language.money import format_money, parse_money
from tcr_shared.language.regions import counties, is_in_ningxia, is_known_region, lies_within, ningxia_regions
from tcr_shared.language.vocabulary import CONSIDERATIONS, PARTY_KINDS, SUBCATEGORIES

_COUNTRY = re.compile(r"^[A-Z]{2}$")
# What an individual's name and identity number read once the person is erased (PIPL art. 47, crypto-shredding in
# adapters/persistence/personal_data.py). A party carrying it is still the same party of the contract: amendments
# that leave it unchanged are valid; no request may bring it in, since it is no identity number.
ERASED = "[已删除 erased]"
EXPERT_REVIEW_THRESHOLD = Decimal("5000000.00")


@dataclass(frozen=True)
class Party:
    name: str
    kind: str
    credit_code: str | None = None
    region: str | None = None
    country: str | None = None
    id_number: str | None = None

    def __post_init__(self) -> None:
        # One spelling per enterprise, however the party was built (a request, a stored record from before the
        # rule, an import row): identity, caps and the feed compare only the canonical form.
        if self.credit_code:
            object.__setattr__(self, "credit_code", canonical_credit_code(self.credit_code))

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Party:
        """A party from a request or a stored record (events stored before the rule keep their bytes; every
        reader sees the canonical credit code)."""
        return cls(**record)

    @property
    def identity(self) -> tuple:
        """What makes two parties the same legal person."""
        return (self.credit_code or self.id_number or f"{self.country}:{self.name.strip().lower()}",)

    @property
    def identity_field(self) -> str:
        """The field `identity` comes from, for naming it in a refusal."""
        return "credit_code" if self.credit_code else "id_number" if self.id_number else "name"

    @property
    def in_ningxia(self) -> bool:
        return is_in_ningxia(self.region)

    @property
    def erased(self) -> bool:
        """An individual whose personal data was erased: who it was can no longer be told."""
        return self.kind == "individual" and self.id_number == ERASED

    def record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "credit_code": self.credit_code,
            "region": self.region,
            "country": self.country,
            "id_number": self.id_number,
        }

    def public(self) -> dict[str, Any]:
        """The party as partners see it: an individual's name and identity number are personal data."""
        personal = self.kind == "individual"
        return {
            "name": None if personal else self.name,
            "kind": self.kind,
            "credit_code": self.credit_code,
            "region": self.region,
            "country": self.country,
        }

    def problems(self, field: str) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        if not self.name.strip():
            found.append((f"{field}.name", "must not be empty"))
        if self.kind not in PARTY_KINDS:
            found.append((f"{field}.kind", f"must be one of {', '.join(sorted(PARTY_KINDS))}"))
            return found
        if self.kind == "foreign":
            if not self.country or not _COUNTRY.match(self.country) or self.country == "CN":
                found.append((f"{field}.country", "a foreign party needs an ISO 3166-1 alpha-2 country other than CN"))
            for extra in ("credit_code", "region", "id_number"):
                if getattr(self, extra):
                    found.append((f"{field}.{extra}", "a foreign party carries a country instead"))
            return found
        if self.country:
            found.append((f"{field}.country", "only foreign parties carry a country"))
        if not self.region:
            found.append((f"{field}.region", "is required"))
        elif not is_known_region(self.region):
            found.append((f"{field}.region", f"{self.region} is not a known GB/T 2260 region code"))
        elif problem := _not_county_level(self.region):
            found.append((f"{field}.region", problem))
        if self.kind == "individual":
            if self.credit_code:
                found.append((f"{field}.credit_code", "an individual carries an id_number, not a credit code"))
            if not self.id_number:
                found.append((f"{field}.id_number", "is required for an individual"))
            elif problem := id_number_problem(self.id_number):
                found.append((f"{field}.id_number", problem))
            return found
        if self.id_number:
            found.append((f"{field}.id_number", "only individuals carry an identity number"))
        if not self.credit_code:
            found.append((f"{field}.credit_code", "is required for an organisation"))
        elif problem := credit_code_problem(self.credit_code):
            found.append((f"{field}.credit_code", problem))
        return found


@dataclass(frozen=True)
class Terms:
    title: str
    category: str
    subcategory: str | None
    signed_on: date
    amount: Decimal
    technology_amount: Decimal
    consideration: str
    seller: Party
    buyer: Party
    result_id: str | None = None
    intermediary: Party | None = None

    def __post_init__(self) -> None:
        # One spelling per project under the per-project cap; an empty result id is no project.
        object.__setattr__(self, "result_id", canonical_result_id(self.result_id) if self.result_id else None)

    # --- serialisation: events store terms as plain JSON values (money as two-decimal strings) ---
    def to_record(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "category": self.category,
            "subcategory": self.subcategory,
            "signed_on": self.signed_on.isoformat(),
            "amount": format_money(self.amount),
            "technology_amount": format_money(self.technology_amount),
            "consideration": self.consideration,
            "seller": self.seller.record(),
            "buyer": self.buyer.record(),
            "result_id": self.result_id,
            "intermediary": self.intermediary.record() if self.intermediary else None,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Terms:
        return cls(
            title=record["title"],
            category=record["category"],
            subcategory=record.get("subcategory"),
            signed_on=date.fromisoformat(record["signed_on"]),
            amount=Decimal(record["amount"]),
            technology_amount=Decimal(record["technology_amount"]),
            consideration=record["consideration"],
            seller=Party.from_record(record["seller"]),
            buyer=Party.from_record(record["buyer"]),
            result_id=record.get("result_id"),
            intermediary=Party.from_record(record["intermediary"]) if record.get("intermediary") else None,
        )

    def public(self) -> dict[str, Any]:
        record = self.to_record()
        record["seller"] = self.seller.public()
        record["buyer"] = self.buyer.public()
        record["intermediary"] = self.intermediary.public() if self.intermediary else None
        return record

    def parties(self) -> list[Party]:
        return [p for p in (self.seller, self.buyer, self.intermediary) if p is not None]

    @property
    def needs_expert_review(self) -> bool:
        return self.technology_amount >= EXPERT_REVIEW_THRESHOLD

    def with_changes(self, changes: dict[str, Any]) -> Terms:
        """Terms after an amendment. Party changes are limited to names and regions."""
        updates: dict[str, Any] = {}
        for key in ("title", "category", "subcategory"):
            if key in changes:
                updates[key] = changes[key]
        for key in ("amount", "technology_amount"):
            if key in changes:
                updates[key] = parse_money(changes[key])
        for role in ("seller", "buyer", "intermediary"):
            if role in changes:
                party = getattr(self, role)
                if party is None:
                    raise InvalidTerms([(f"changes.{role}", "the contract has no such party")])
                if party.erased:
                    raise InvalidTerms([(f"changes.{role}", "this individual's personal data was erased")])
                updates[role] = replace(party, **changes[role])
        return replace(self, **updates)

    def changed_fields(self, other: Terms) -> list[str]:
        mine, theirs = self.to_record(), other.to_record()
        changed = []
        for key, value in mine.items():
            if isinstance(value, dict) and isinstance(theirs.get(key), dict):
                changed += [f"{key}.{k}" for k in value if value[k] != theirs[key].get(k)]
            elif value != theirs.get(key):
                changed.append(key)
        return changed

    def validate(self, today: date, before: Terms | None = None) -> None:
        """Raise InvalidTerms naming every field that breaks a rule. `before` (an amendment's terms before it): an
        erased individual it carries unchanged stays valid, though its identity number no longer validates."""
        found: list[tuple[str, str]] = []
        if not self.title.strip():
            found.append(("title", "must not be empty"))
        if self.category not in SUBCATEGORIES:
            found.append(("category", f"must be one of {', '.join(SUBCATEGORIES)}"))
        elif self.subcategory not in SUBCATEGORIES[self.category]:
            allowed = ", ".join(sorted(str(s) for s in SUBCATEGORIES[self.category]))
            found.append(("subcategory", f"'{self.subcategory}' is not a subcategory of {self.category} ({allowed})"))
        if self.consideration not in CONSIDERATIONS:
            found.append(("consideration", "must be 'money' or 'equity'"))
        if self.amount <= 0:
            found.append(("amount", "must be more than 0.00"))
        if self.technology_amount <= 0:
            found.append(("technology_amount", "must be more than 0.00"))
        elif self.technology_amount > self.amount:
            found.append(("technology_amount", "must not exceed amount (技术交易额 is part of 成交额)"))
        if self.signed_on > today:
            found.append(("signed_on", "must not be in the future"))
        for role in ("seller", "buyer", "intermediary"):
            party = getattr(self, role)
            kept_erased = party is not None and party.erased and before is not None and getattr(before, role) == party
            if party is not None and not kept_erased:
                found += party.problems(role)
        if not found:
            found += self._party_rules()
        if found:
            raise InvalidTerms(found)

    def _party_rules(self) -> list[tuple[str, str]]:
        found = []
        if self.seller.identity == self.buyer.identity and not self.seller.erased:  # erased: nobody can tell
            found += _same_party(("seller", self.seller), ("buyer", self.buyer), "seller and buyer must differ")
        for role in ("seller", "buyer"):
            party = getattr(self, role)
            if self.intermediary and self.intermediary.identity == party.identity and not party.erased:
                found += _same_party(
                    (role, party),
                    ("intermediary", self.intermediary),
                    "the intermediary must be neither seller nor buyer",
                )
        if not (self.seller.in_ningxia or self.buyer.in_ningxia):
            found.append(("seller.region", "at least one of seller and buyer must be located in Ningxia (64xxxx)"))
        return found


def _same_party(first: tuple[str, Party], second: tuple[str, Party], rule: str) -> list[tuple[str, str]]:
    """Both fields that name one legal person in two roles (credit codes are compared in canonical form)."""
    (role_a, a), (role_b, b) = first, second
    shown = f" ({a.credit_code})" if a.identity_field == "credit_code" else ""  # never echo an identity number
    message = f"{role_a} and {role_b} are the same party{shown}: {rule}"
    return [(f"{role_a}.{a.identity_field}", message), (f"{role_b}.{b.identity_field}", message)]


def _not_county_level(region: str) -> str | None:
    """Why a Ningxia code is not a party's region (None: it is a county-level code, or outside Ningxia). County
    figures and their roll-ups add up only when every party sits in one 区, 县 or 县级市."""
    known = ningxia_regions().get(region)
    if known is None or known.level == "county":
        return None
    within = ", ".join(f"{c.code} {c.name_zh}" for c in counties() if lies_within(c.code, region))
    return (
        f"{region} ({known.name_zh}) is a {known.level} code; a party in Ningxia carries the county-level code of "
        f"its 区, 县 or 县级市: {within}"
    )
