"""The registry's queries: one contract, its history, and listings. Who may read what is decided here too."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from tcr_registry.application.ports import ContractFilter, ContractIndex, ContractStore, ListedContract
from tcr_registry.domain.contract import Contract
from tcr_registry.domain.jurisdiction import may_register


class NotYourJurisdiction(Exception):
    """A point may read its own contracts and those it could register; nothing else."""


@dataclass(frozen=True)
class Reader:
    role: str
    point_id: str | None = None
    jurisdiction: str | None = None

    @property
    def is_point(self) -> bool:
        return self.role == "point"


async def get_contract(store: ContractStore, reader: Reader, contract_id: UUID) -> Contract:
    contract = await store.load(contract_id)
    _check_can_read(reader, contract)
    return contract


async def contract_history(store: ContractStore, reader: Reader, contract_id: UUID) -> list[Any]:
    """Every event of the contract, oldest first."""
    await get_contract(store, reader, contract_id)
    return await store.events(contract_id)


@dataclass(frozen=True)
class ContractPage:
    contracts: list[dict[str, Any]]
    last_position: int | None  # set when more contracts follow: where the next page starts after


async def list_contracts(
    index: ContractIndex, reader: Reader, filters: ContractFilter, after: int | None, limit: int
) -> ContractPage:
    """Oldest first. A point sees only its own contracts."""
    if reader.is_point:
        filters = ContractFilter(**{**filters.__dict__, "point_id": reader.point_id})
    rows: list[ListedContract] = await index.page(filters, after, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return ContractPage([r.summary for r in rows], rows[-1].position if more else None)


def _check_can_read(reader: Reader, contract: Contract) -> None:
    if reader.is_point and contract.point_id != reader.point_id:
        if not may_register(reader.jurisdiction, contract.terms):
            raise NotYourJurisdiction("This contract lies outside your registration point's jurisdiction.")
