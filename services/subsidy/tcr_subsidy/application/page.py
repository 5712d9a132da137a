"""The ledger of one page: the part of the projection a page of registry events needs, loaded from the store,
and a record of what the engine changed so that only that is written back."""

from __future__ import annotations

from decimal import Decimal

from tcr_subsidy.domain.ledger import Award, CapUsage, ContractRecord, Ledger


class PageLedger(Ledger):
    """A `Ledger` holding only what the store loaded; remembers which rows exist (update vs insert) and which the
    engine changed. Its caps are exactly those loaded or named in `expect_caps` (any other read is a bug)."""

    def __init__(self) -> None:
        super().__init__(cap_keys=set())
        self.stored_contracts: set[str] = set()
        self.stored_awards: set[str] = set()
        self.stored_caps: set[str] = set()
        self.changed_contracts: set[str] = set()
        self.changed_awards: set[str] = set()
        self.changed_caps: set[str] = set()

    # -- filled by the store --------------------------------------------------------------------------------------
    def stored_contract(self, record: ContractRecord) -> None:
        self.contracts[record.contract_id] = record
        self.stored_contracts.add(record.contract_id)

    def stored_award(self, award: Award) -> None:
        self.load_award(award)
        self.stored_awards.add(award.award_id)

    def stored_cap(self, usage: CapUsage) -> None:
        self.caps[usage.key] = usage
        self.stored_caps.add(usage.key)

    def expect_caps(self, keys: set[str]) -> None:
        """The caps this page may read: those not stored start from zero."""
        self.cap_keys = keys

    # -- changes by the engine --------------------------------------------------------------------------------
    def put_contract(self, record: ContractRecord) -> None:
        super().put_contract(record)
        self.changed_contracts.add(record.contract_id)

    def put_award(self, award: Award) -> None:
        super().put_award(award)
        self.changed_awards.add(award.award_id)

    def use_cap(self, usage: CapUsage, used: Decimal) -> None:
        super().use_cap(usage, used)
        self.changed_caps.add(usage.key)
