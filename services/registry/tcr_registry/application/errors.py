"""Application-level refusals (the domain's own are in tcr_registry.domain.errors)."""

from __future__ import annotations


class ContractNotFound(Exception):
    pass


class StaleVersion(Exception):
    """The client's If-Match names a version that is no longer current."""

    def __init__(self, expected: int, actual: int) -> None:
        super().__init__(f"the contract is at version {actual}, not {expected}; reload it and try again")
        self.actual = actual


class AlreadySubmitted(Exception):
    """A contract with this id exists: the same Idempotency-Key was used before."""

    def __init__(self, contract_id) -> None:
        super().__init__(str(contract_id))
        self.contract_id = contract_id


class Conflict(Exception):
    """Another writer changed the aggregate first; the caller may retry."""


class PointNumberTaken(Exception):
    """A jurisdiction's registration point numbers are unique."""

    def __init__(self, number: str, jurisdiction: str) -> None:
        super().__init__(f"point number {number} already exists in jurisdiction {jurisdiction}")
        self.number = number
        self.jurisdiction = jurisdiction
