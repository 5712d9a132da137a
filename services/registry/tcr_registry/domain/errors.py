"""What can go wrong in the registry's domain, in words a registration point understands."""

from __future__ import annotations


class DomainError(Exception):
    pass


class InvalidTerms(DomainError):
    """The contract's terms break a rule; `errors` names each field."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{f}: {m}" for f, m in errors))


class NotAllowedInState(DomainError):
    """The contract's status forbids the action (e.g. certifying a revoked contract)."""


class OutsideJurisdiction(DomainError):
    """The point may not register or act on a contract outside its jurisdiction."""
