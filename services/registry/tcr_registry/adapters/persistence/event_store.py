"""The registry's event store: the eventsourcing Application that holds the contract and registration-book
aggregates, whose notification log is the public feed's source; and the contracts read from it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application

from tcr_registry.application.errors import ContractNotFound
from tcr_registry.domain.contract import Contract


class Registry(Application):
    # The name fixes the event store's table names: never change it.
    name = "registry"
    # Events are facts of a government register: keep them readable JSON, uncompressed and uncached here;
    # the writer keeps its own cache of the aggregates it has just written.
    env = {"CREATE_TABLE": "y"}


class EventStoreContracts:
    """The ContractStore port over the event store (which exists once the service has started)."""

    def __init__(self, registry: Callable[[], Registry | None]) -> None:
        self._registry = registry

    async def load(self, contract_id: UUID) -> Contract:
        return await asyncio.to_thread(self._load, contract_id)

    async def events(self, contract_id: UUID) -> list[Any]:
        return await asyncio.to_thread(lambda: list(self._registry().events.get(contract_id)))

    def _load(self, contract_id: UUID) -> Contract:
        try:
            contract = self._registry().repository.get(contract_id)
        except AggregateNotFoundError:
            raise ContractNotFound(str(contract_id)) from None
        if not isinstance(contract, Contract):  # a registration book's id
            raise ContractNotFound(str(contract_id))
        return contract
