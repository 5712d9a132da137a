"""Applying pages of registry events: decisions, cap usage, contract records, the award feed and the tracking
position all change in ONE transaction (the store is bound to it), so each registry event takes effect exactly
once."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from tcr_shared.language.events.envelope import FeedEvent
from tcr_shared.platform.collector import collector_paused
from tcr_subsidy.application.page import PageLedger
from tcr_subsidy.application.ports import AwardStore, SkippedEvent
from tcr_subsidy.domain.award_events import AwardEvent
from tcr_subsidy.domain.decision import Engine, MalformedEvent, RegistryEvent, UnknownEventType, cap_keys_touched
from tcr_subsidy.domain.terms import plain_text

log = logging.getLogger("tcr.subsidy.projection")
REGISTRY_FEED = "registry"


def registry_event(event: FeedEvent) -> RegistryEvent:
    """The engine's view of a feed event; its text in the form every store keeps (see `plain_text`)."""
    return RegistryEvent(
        id=plain_text(event.id),
        type=plain_text(event.type),
        position=event.position,
        time=plain_text(event.time),
        contract_id=plain_text(event.subject or str(event.data.get("contract_id", ""))),
        data=event.data,
    )


class AwardProjection:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.skipped_total = 0
        self.awards_total = 0

    async def apply_page(self, store: AwardStore, events: Sequence[FeedEvent]) -> None:
        with collector_paused():  # a burst of allocation without cycles: see collector_paused
            batch = [registry_event(e) for e in events]
            page = await self._load(store, batch)
            outputs, skipped = self._decide(page, batch)
            await store.write(page, outputs, skipped)
        self.skipped_total += len(skipped)
        self.awards_total += len(outputs)

    def _decide(self, page: PageLedger, batch: list[RegistryEvent]) -> tuple[list[AwardEvent], list[SkippedEvent]]:
        outputs: list[AwardEvent] = []
        skipped: list[SkippedEvent] = []
        for event in batch:
            try:
                outputs.extend(self.engine.apply(page, event))
            except UnknownEventType:
                log.warning("skipping event of unknown type %s at position %s", event.type, event.position)
                skipped.append(SkippedEvent(event.position, event.id, event.type, "unknown event type"))
            except MalformedEvent as exc:
                log.warning("skipping malformed event at position %s: %s", event.position, exc)
                reason = plain_text(f"malformed: {exc}"[:2000])
                skipped.append(SkippedEvent(event.position, event.id, event.type, reason))
        return outputs, skipped

    async def _load(self, store: AwardStore, batch: list[RegistryEvent]) -> PageLedger:
        """The page's contracts and their awards first; then the domain names the caps the page can touch."""
        page = PageLedger()
        await store.load_contracts(page, sorted({e.contract_id for e in batch}))
        keys = cap_keys_touched(self.engine.rulebook, page, batch)
        page.expect_caps(keys)
        await store.load_caps(page, sorted(keys))
        return page
