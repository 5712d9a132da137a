"""What the subsidy application needs from the world, as Protocols; adapters implement them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tcr_shared.language.events.envelope import FeedEvent, FeedPage
from tcr_subsidy.application.page import PageLedger


@dataclass(frozen=True)
class SkippedEvent:
    """A registry event the service could not decide (unknown type or malformed), recorded for /v1/status."""

    position: int
    event_id: str
    type: str
    reason: str


class AwardStore(Protocol):
    """What deciding a page reads from the projection's tables (committed rows; `NotifyingSink` writes them)."""

    async def load_contracts(self, page: PageLedger, contract_ids: Sequence[str]) -> None:
        """Fill `page` with these contracts' records and the awards of those already decided."""

    async def load_caps(self, page: PageLedger, cap_keys: Sequence[str]) -> None:
        """Fill `page` with the usage of these caps (those never used stay absent)."""


class RegistryPages(Protocol):
    """The registry's feed, read page by page."""

    async def page(self, after: int, *, limit: int | None = None) -> FeedPage: ...


class PositionedSink(Protocol):
    """Applies pages of registry events together with the feed position they reach, exactly once."""

    async def position(self) -> int: ...

    async def apply(self, events: Sequence[FeedEvent], position: int) -> None: ...


class SimulationStore(Protocol):
    """Where simulations are kept (who ran them, when, the candidate, the result), to be cited later."""

    async def save(self, simulation: dict[str, Any]) -> None: ...

    async def get(self, simulation_id: str) -> dict[str, Any] | None: ...

    # A long simulation is a job: saved `running`, then its progress, then `done` (result) or `failed` (why).
    async def progress(self, simulation_id: str, progress: dict[str, Any]) -> None: ...

    async def finish(self, simulation_id: str, result: dict[str, Any]) -> None: ...

    async def fail(self, simulation_id: str, error: str) -> None: ...

    async def fail_unfinished(self, error: str) -> int: ...
