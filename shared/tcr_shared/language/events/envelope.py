"""CloudEvents 1.0 (JSON format) envelope with the tcr extension attribute `position`."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class FeedEvent(BaseModel):
    """One event of a public feed. `position` is the global order in the publishing service's log."""

    model_config = ConfigDict(extra="allow")

    specversion: str = "1.0"
    id: str = Field(description="Stable event id; the same event always has the same id (use it to de-duplicate)")
    source: str = Field(description="The publishing service, e.g. /tcr/registry")
    type: str = Field(description="Versioned type, e.g. tcr.registry.contract.certified.v1")
    time: str = Field(description="When the event happened, RFC 3339")
    subject: str = Field(description="The contract id the event is about")
    datacontenttype: str = "application/json"
    position: int = Field(description="Global position in the publisher's log (extension attribute)")
    data: dict[str, Any]


class FeedPage(BaseModel):
    events: list[FeedEvent]
    next_after: int = Field(description="Pass as ?after= to read the next page")
    head: int = Field(0, description="The highest position the publisher has committed")
