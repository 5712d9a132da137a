"""The ledger the decision reads and changes: contract records, awards and cap usage. A plain structure: the
engine changes it only through `put_contract`, `put_award` and `use_cap`, so a caller that must know what changed
(the application, to write a page back) can wrap those three methods."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tcr_shared.language.money import ZERO
from tcr_shared.language.vocabulary import PROGRAMMES


class NotPreloaded(RuntimeError):
    """A cap the caller did not load: a bug that must fail the page, never skip an event."""


# Slotted records: a ledger holds millions of them in a what-if replay, and a slotted record is about a fifth of the
# memory of one with a __dict__ and quicker to build and read (the decision builds one per award).
@dataclass(slots=True)
class ContractRecord:
    contract_id: str
    status: str
    registration_number: str | None = None
    policy_year: int | None = None
    rule_set: str | None = None
    certified_at: str | None = None
    result_id: str | None = None
    cause_position: int = 0
    explanation: str = ""
    considered: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class Award:
    # The field order is part of the shape: Engine._decide builds an Award by position (the hot path).
    award_id: str
    contract_id: str
    registration_number: str | None
    beneficiary: str
    beneficiary_name: str | None
    beneficiary_kind: str
    beneficiary_region: str
    programme: str
    policy_year: int
    rule_set: str
    clause: str
    cap_key: str
    project: str | None
    base: Decimal
    rate: Decimal
    entitlement: Decimal
    award: Decimal
    status: str
    cap: Decimal
    explanation: str
    decided_position: int
    updated_position: int


@dataclass(slots=True)
class CapUsage:
    key: str
    programme: str
    beneficiary: str
    policy_year: int | None
    project: str | None
    used: Decimal = ZERO


class Ledger:
    """What the engine reads and changes. A ledger may hold only part of the caps (a page's worth, loaded from a
    database): then `cap_keys` names the caps it holds, and reading any other cap raises NotPreloaded, since
    counting it from zero would silently overpay. Without `cap_keys` (in memory) every cap is held."""

    def __init__(self, *, cap_keys: set[str] | None = None) -> None:
        self.contracts: dict[str, ContractRecord] = {}
        self.awards: dict[str, Award] = {}
        self.by_contract: dict[str, list[str]] = {}
        self.caps: dict[str, CapUsage] = {}
        self.cap_keys = cap_keys

    # -- reading ------------------------------------------------------------------------------------------------
    def awards_of(self, contract_id: str) -> list[Award]:
        """A contract's awards in a fixed order (when decided, then programme order), however they were loaded."""
        found = [self.awards[a] for a in self.by_contract.get(contract_id, [])]
        return sorted(found, key=lambda a: (a.decided_position, PROGRAMMES.index(a.programme), a.beneficiary))

    def cap(self, key: str, programme: str, beneficiary: str, year: int | None, project: str | None) -> CapUsage:
        usage = self.caps.get(key)
        if usage is None:
            if self.cap_keys is not None and key not in self.cap_keys:
                raise NotPreloaded(f"cap {key} was not preloaded")
            usage = self.caps[key] = CapUsage(key, programme, beneficiary, year, project)
        return usage

    # -- loading (no change) ------------------------------------------------------------------------------------
    def load_award(self, award: Award) -> None:
        self.awards[award.award_id] = award
        self.by_contract.setdefault(award.contract_id, []).append(award.award_id)

    # -- changing -----------------------------------------------------------------------------------------------
    def put_contract(self, record: ContractRecord) -> None:
        self.contracts[record.contract_id] = record

    def put_award(self, award: Award) -> None:
        """A new award, or an award whose fields the engine changed."""
        if award.award_id not in self.awards:
            self.load_award(award)

    def use_cap(self, usage: CapUsage, used: Decimal) -> None:
        usage.used = used
