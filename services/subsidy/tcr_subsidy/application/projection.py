"""Applying pages of registry events: decisions, cap usage, contract records, the award feed and the tracking
position all change in ONE transaction (SqlProjectionSink), so each registry event takes effect exactly once."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tcr_shared.feeds.projection_store import SqlProjectionSink
from tcr_shared.language.events.envelope import FeedEvent
from tcr_subsidy.adapters.persistence import tables as t
from tcr_subsidy.adapters.persistence.store import load_page_state, write_page
from tcr_subsidy.domain.awards import Engine, MalformedEvent, RegistryEvent, UnknownEventType

log = logging.getLogger("tcr.subsidy.projection")
REGISTRY_FEED = "registry"


def registry_event(event: FeedEvent) -> RegistryEvent:
    return RegistryEvent(
        id=event.id,
        type=event.type,
        position=event.position,
        time=event.time,
        contract_id=event.subject or str(event.data.get("contract_id", "")),
        data=event.data,
    )


class AwardProjection:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.skipped_total = 0
        self.awards_total = 0

    async def apply_page(self, session: AsyncSession, events: Sequence[FeedEvent]) -> None:
        batch = [registry_event(e) for e in events]
        state = await load_page_state(session, self.engine, batch)
        outputs = []
        skipped = []
        for event in batch:
            try:
                outputs.extend(self.engine.apply(state, event))
            except UnknownEventType:
                log.warning("skipping event of unknown type %s at position %s", event.type, event.position)
                skipped.append(
                    {
                        "position": event.position,
                        "event_id": event.id,
                        "type": event.type,
                        "reason": "unknown event type",
                    }
                )
            except MalformedEvent as exc:
                log.warning("skipping malformed event at position %s: %s", event.position, exc)
                skipped.append(
                    {
                        "position": event.position,
                        "event_id": event.id,
                        "type": event.type,
                        "reason": f"malformed: {exc}"[:2000],
                    }
                )
        await write_page(session, state, outputs, skipped)
        self.skipped_total += len(skipped)
        self.awards_total += len(outputs)


class NotifyingSink:
    """SqlProjectionSink plus a callback after each commit (wakes the award feed's long polls and SSE)."""

    def __init__(
        self, db: AsyncEngine, projection: AwardProjection, after_commit: Callable[[], None], feed: str = REGISTRY_FEED
    ) -> None:
        self._inner = SqlProjectionSink(db, t.feed_tracking, feed, projection.apply_page)
        self._after_commit = after_commit

    async def position(self) -> int:
        return await self._inner.position()

    async def apply(self, events: Sequence[FeedEvent], position: int) -> None:
        await self._inner.apply(events, position)
        self._after_commit()
