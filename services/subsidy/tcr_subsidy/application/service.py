"""The running subsidy service: migrations, the registry follower, and the objects the HTTP layer reads."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from tcr_shared.feeds.client import FeedClient
from tcr_shared.feeds.follower import Follower
from tcr_shared.feeds.server import NewEventsSignal
from tcr_shared.feeds.sources import BatchingSource, PrefetchingSource
from tcr_subsidy.adapters.persistence import migrate
from tcr_subsidy.adapters.persistence.queries import Queries
from tcr_subsidy.application.projection import REGISTRY_FEED, AwardProjection, NotifyingSink
from tcr_subsidy.domain.awards import Engine
from tcr_subsidy.domain.rules import RuleBook
from tcr_subsidy.settings import SubsidySettings

log = logging.getLogger("tcr.subsidy")


class SubsidyService:
    def __init__(self, settings: SubsidySettings) -> None:
        self.settings = settings
        self.database = settings.database
        self.rulebook = RuleBook.from_directory(*settings.rules_dirs)
        self.db = self.database.async_engine()
        self.queries = Queries(self.db)
        self.signal = NewEventsSignal()
        self.projection = AwardProjection(Engine(self.rulebook))
        self.sink = NotifyingSink(self.db, self.projection, self.signal.ring)
        self.feed = FeedClient(settings.registry_url, settings.registry_feed_key, page_size=settings.subsidy_page_size)
        source = (
            PrefetchingSource(self.feed, depth=settings.subsidy_prefetch) if settings.subsidy_prefetch else self.feed
        )
        if settings.subsidy_batch_pages > 1:
            source = BatchingSource(source, settings.subsidy_batch_pages)
        self.follower = Follower(REGISTRY_FEED, source, self.sink)
        self._task: asyncio.Task | None = None
        self.started = False

    async def start(self) -> None:
        await asyncio.to_thread(migrate.upgrade, self.database)
        self.signal.bind(asyncio.get_running_loop())
        self.follower.status.position = await self.sink.position()
        if self.settings.subsidy_follow:
            self._task = asyncio.create_task(self.follower.run(), name="subsidy-follower")
        self.started = True

    async def ready(self) -> bool:
        return self.started

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.feed.aclose()
        await self.db.dispose()
