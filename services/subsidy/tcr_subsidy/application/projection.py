"""Applying pages of registry events: decisions, cap usage, contract records, the award feed and the tracking
position all change in ONE transaction (the store is bound to it), so each registry event takes effect exactly
once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from tcr_shared.language.events.envelope import FeedEvent
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


# While a page is decided, let the event loop run this often (events): the previous page's transaction, written
# meanwhile by another task, then moves on statement by statement instead of waiting for the whole page.
YIELD_EVERY = 50


@dataclass
class DecidedPage:
    """A page of registry events decided against its ledger, not written yet."""

    page: PageLedger
    outputs: list[AwardEvent]
    skipped: list[SkippedEvent]


class AwardProjection:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.skipped_total = 0
        self.awards_total = 0

    async def decide_page(
        self, store: AwardStore, events: Sequence[FeedEvent], carried: PageLedger | None = None
    ) -> DecidedPage:
        """Load what the page needs and decide it, without writing. `carried`: the ledger of the page decided just
        before, whose writes may not have committed yet: what it holds is taken from it, not from the store (which
        does not show it yet); everything else the store shows as committed."""
        batch = [registry_event(e) for e in events]
        page = await self._load(store, batch, carried)
        outputs, skipped = await self._decide(page, batch)
        return DecidedPage(page, outputs, skipped)

    def written(self, decided: DecidedPage) -> None:
        """Count a page once its transaction has committed."""
        self.skipped_total += len(decided.skipped)
        self.awards_total += len(decided.outputs)

    async def _decide(
        self, page: PageLedger, batch: list[RegistryEvent]
    ) -> tuple[list[AwardEvent], list[SkippedEvent]]:
        outputs: list[AwardEvent] = []
        skipped: list[SkippedEvent] = []
        for n, event in enumerate(batch, start=1):
            if n % YIELD_EVERY == 0:
                await asyncio.sleep(0)
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

    async def _load(self, store: AwardStore, batch: list[RegistryEvent], carried: PageLedger | None) -> PageLedger:
        """The page's contracts and their awards first; then the domain names the caps the page can touch."""
        page = PageLedger()
        contract_ids = sorted({e.contract_id for e in batch})
        if carried is not None:
            contract_ids = page.carry_contracts(carried, contract_ids)
        await store.load_contracts(page, contract_ids)
        keys = cap_keys_touched(self.engine.rulebook, page, batch)
        page.expect_caps(keys)
        await store.load_caps(page, sorted(keys if carried is None else page.carry_caps(carried, keys)))
        return page
