"""Last line of defence for personal data in partner deliveries (webhooks, NATS).

The publishers already leave individuals' names and identity numbers out of their feeds; everything that pushes
events to partners passes each event through `scrub` as well, so a mistake upstream cannot leak them.
"""

from __future__ import annotations

import json
from typing import Any

from tcr_shared.language.events.envelope import FeedEvent

_PERSONAL_KEYS = frozenset({"id_number", "identity_number", "resident_id"})


def _scrub(value: Any) -> Any:
    if isinstance(value, dict):
        cleaned = {k: _scrub(v) for k, v in value.items() if k not in _PERSONAL_KEYS}
        if cleaned.get("kind") == "individual":
            cleaned["name"] = None
        if cleaned.get("beneficiary_kind") == "individual":
            cleaned["beneficiary_name"] = None
        return cleaned
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def scrub(event: FeedEvent) -> FeedEvent:
    """The event without individuals' names or identity numbers (a copy; the input is untouched)."""
    return event.model_copy(update={"data": _scrub(event.data)})


def encode_event(event: FeedEvent) -> str:
    """What partners receive (a webhook body, a NATS message): the event as a CloudEvents 1.0 JSON object
    (structured mode), personal data removed."""
    return json.dumps(scrub(event).model_dump(mode="json"), ensure_ascii=False, separators=(",", ":"))
