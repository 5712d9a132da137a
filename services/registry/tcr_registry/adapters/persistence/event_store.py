"""The registry's event store: the eventsourcing Application that holds the contract and registration-book
aggregates, whose notification log is the public feed's source; and the contracts read from it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from json.encoder import c_make_encoder, encode_basestring
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.persistence import InfrastructureFactory, JSONTranscoder
from eventsourcing.utils import Environment, get_topic

from tcr_registry.adapters.persistence.personal_data import PersonalDataMapper, PersonalKeys
from tcr_registry.adapters.persistence.receipts import ReceiptsPostgresRecorder, ReceiptsSQLiteRecorder
from tcr_registry.application.errors import ContractNotFound
from tcr_registry.domain.contract import Contract


class OneEncoderTranscoder(JSONTranscoder):
    """The library's JSON transcoder, byte for byte, with its C encoder made once instead of once per event: the
    library's encode() goes through json.JSONEncoder.encode, which builds a new C encoder (and a dict of markers
    for its circular-reference check) for every event, about a third of the JSON's cost in a large batch. Same C
    encoder, same options (ensure_ascii off, compact separators, the library's `default` for UUIDs, datetimes and
    Decimals), hence the same bytes. Without the markers a circular structure fails the save with RecursionError
    instead of ValueError; event state holds none. The encoder keeps no state between calls: any thread may use it."""

    def __init__(self) -> None:
        super().__init__()
        if c_make_encoder is None:  # a Python without the C accelerator: the library's path
            self._encode_once = None
        else:
            self._encode_once = c_make_encoder(
                None, self._encode_obj, encode_basestring, None, ":", ",", False, False, True
            )

    def encode(self, obj: Any) -> bytes:
        if self._encode_once is None:
            return super().encode(obj)
        return "".join(self._encode_once(obj, 0)).encode("utf8")


class Registry(Application):
    # The name fixes the event store's table names: never change it.
    name = "registry"
    # Events are facts of a government register: keep them readable JSON, uncompressed and uncached here;
    # the writer keeps its own cache of the aggregates it has just written.
    env = {"CREATE_TABLE": "y"}

    def __init__(self, env=None, personal_keys: PersonalKeys | None = None) -> None:
        # Without personal keys (operations that never read personal data), individuals' fields read as erased.
        self.personal_keys = personal_keys
        super().__init__(env)

    def construct_transcoder(self) -> JSONTranscoder:
        transcoder = OneEncoderTranscoder()
        self.register_transcodings(transcoder)
        return transcoder

    def construct_mapper(self) -> PersonalDataMapper:
        """Individuals' names and identity numbers are encrypted on their way into the store (personal_data)."""
        mapper = self.factory.mapper(transcoder=self.construct_transcoder(), mapper_class=PersonalDataMapper)
        mapper.keys = self.personal_keys
        return mapper

    def construct_env(self, name: str, env=None) -> Environment:
        """The library's recorders, extended to store idempotency receipts in the events' own transaction."""
        environment = super().construct_env(name, env)
        recorder = ReceiptsPostgresRecorder if "postgres" in environment.get("PERSISTENCE_MODULE", "") else None
        if "sqlite" in environment.get("PERSISTENCE_MODULE", ""):
            recorder = ReceiptsSQLiteRecorder
        if recorder is not None:
            environment[InfrastructureFactory.APPLICATION_RECORDER_TOPIC] = get_topic(recorder)
        return environment

    def save_events(self, events: list, **kwargs: Any) -> list:
        """Application.save for events already collected from their aggregates (the writer's batches), without
        its per-object protocol checks (isinstance against runtime Protocols: 9% of a large batch's time).
        The registry takes no snapshots and has no _notify hook, so what is left of save is _record."""
        processing_event: ProcessingEvent = ProcessingEvent()
        processing_event.events = list(events)
        processing_event.saved_kwargs.update(kwargs)
        return self._record(processing_event)

    def version_at(self, aggregate_id: UUID, version: int):
        """The aggregate as it was at `version` (a replayed answer shows what the first answer showed)."""
        return self.repository.get(aggregate_id, version=version)


class EventStoreContracts:
    """The ContractStore port over the event store (which exists once the service has started)."""

    def __init__(self, registry: Callable[[], Registry | None]) -> None:
        self._registry = registry

    async def load(self, contract_id: UUID) -> Contract:
        return await asyncio.to_thread(self._load, contract_id)

    async def load_version(self, contract_id: UUID, version: int) -> Contract:
        """The contract as it was at `version`: what a write's answer showed."""
        return await asyncio.to_thread(lambda: self._registry().version_at(contract_id, version))

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
