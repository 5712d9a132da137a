"""What the registry's commands and queries need from the world, as Protocols. The adapters implement them
(tcr_registry.adapters.persistence); the in-memory tests implement them with a dictionary."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar
from uuid import UUID

from tcr_registry.domain.contract import Contract
from tcr_registry.domain.registration_book import RegistrationBook
from tcr_shared.platform.auth import Principal

T = TypeVar("T")
Aggregate = Contract | RegistrationBook


class UnitOfWork(Protocol):
    """The aggregates one command reads and changes; what it adds or changes is saved together, or not at all."""

    def is_new(self, aggregate_id: UUID) -> bool:
        """Whether no aggregate has this id."""
        ...

    def get(self, aggregate_id: UUID) -> Aggregate | None: ...

    def add(self, aggregate: Aggregate) -> None: ...


Command = Callable[[UnitOfWork], T]


class Committed(Protocol[T]):
    value: T
    position: int | None  # the log position of the command's last event; None when it stored nothing


class CommandRunner(Protocol):
    """Runs commands one at a time per aggregate and commits what they changed."""

    async def execute(self, command: Command[T]) -> Committed[T]: ...


class ContractStore(Protocol):
    """Contracts as the event store holds them."""

    async def load(self, contract_id: UUID) -> Contract:
        """The contract now; ContractNotFound when there is none."""
        ...

    async def events(self, contract_id: UUID) -> list[Any]:
        """Every event of the contract, oldest first (domain events, public or not)."""
        ...


@dataclass(frozen=True)
class ContractFilter:
    """Which contracts a listing shows. Every field narrows; None means any."""

    point_id: str | None = None
    status: str | None = None
    seller: str | None = None  # credit code (or country:name for a foreign party)
    buyer: str | None = None
    area_prefix: str | None = None  # either party in this area
    year: int | None = None


@dataclass(frozen=True)
class ListedContract:
    position: int  # where the contract entered the log: the listing's order
    summary: dict[str, Any]


class ContractIndex(Protocol):
    """The contract index: a projection of the log that lists and filters fast."""

    async def page(self, filters: ContractFilter, after: int | None, limit: int) -> list[ListedContract]: ...


@dataclass(frozen=True)
class RegistrationPoint:
    id: str
    number: str
    name: str
    jurisdiction: str

    @property
    def registration_prefix(self) -> str:
        return f"{self.jurisdiction}{self.number}"


@dataclass(frozen=True)
class IssuedKey:
    id: str
    secret: str  # shown once; only its hash is kept


class PointsAndKeys(Protocol):
    """Registration points and the API keys that act for them (or for partners and analysts)."""

    async def create_point(self, number: str, name: str, jurisdiction: str, created_by: str) -> RegistrationPoint:
        """A new point; PointNumberTaken when the jurisdiction already has this number."""
        ...

    async def list_points(self) -> list[RegistrationPoint]: ...

    async def point_exists(self, point_id: str) -> bool: ...

    async def issue_key(self, role: str, point_id: str | None, label: str | None, created_by: str) -> IssuedKey: ...

    async def revoke_key(self, key_id: str) -> bool:
        """False when there is no active key with this id."""
        ...

    async def resolve_key(self, secret: str) -> Principal | None: ...
