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

    # -- carried from the page before, whose transaction may not have committed yet ----------------------------
    def carry_contracts(self, previous: PageLedger, contract_ids: list[str]) -> list[str]:
        """Take from `previous` the contracts it holds (with all their awards, which it holds too), as rows that
        exist once it commits; returns the ids it does not hold, to be loaded from the store. The records are
        shared, not copied: `previous` has already taken its rows (`page_rows`) and changes nothing any more."""
        missing = []
        for contract_id in contract_ids:
            record = previous.contracts.get(contract_id)
            if record is None:
                missing.append(contract_id)
                continue
            self.stored_contract(record)
            for award_id in previous.by_contract.get(contract_id, ()):
                self.stored_award(previous.awards[award_id])
        return missing

    def carry_caps(self, previous: PageLedger, keys: set[str]) -> set[str]:
        """Take from `previous` the caps it could read (those it wrote or loaded, with their usage; those it only
        expected are unused, as they are in the store); returns the keys it does not know, to be loaded."""
        written = previous.stored_caps | previous.changed_caps
        for key in keys & written:
            self.stored_cap(previous.caps[key])
        return keys - written - (previous.cap_keys or set())

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
