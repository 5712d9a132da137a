"""The subsidy service's composition root: `SubsidyRuntime` wires settings, database, rule book, projection,
registry follower and webhook deliveries; `create_app` builds the FastAPI app around one runtime
(uvicorn --factory tcr_subsidy.bootstrap:create_app, or `tcr-subsidy serve`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from tcr_shared.feeds.client import FeedClient
from tcr_shared.feeds.follower import Follower
from tcr_shared.feeds.server import NewEventsSignal
from tcr_shared.feeds.sources import BatchingSource, PrefetchingSource
from tcr_shared.partners.webhooks import DeliveryWorker
from tcr_shared.platform.auth import Authenticator, RegistryKeyResolver, RegistryKeyStatus
from tcr_shared.platform.lease import Lease
from tcr_shared.platform.observability import configure_logging
from tcr_shared.platform.ratelimit import RateLimits
from tcr_subsidy.adapters.feeds import NotifyingSink
from tcr_subsidy.adapters.http.app import build_app
from tcr_subsidy.adapters.persistence import migrate
from tcr_subsidy.adapters.persistence.queries import Queries
from tcr_subsidy.adapters.persistence.tables import webhooks
from tcr_subsidy.adapters.rule_files import load_rule_book
from tcr_subsidy.application.projection import REGISTRY_FEED, AwardProjection
from tcr_subsidy.domain.decision import Engine
from tcr_subsidy.settings import SubsidySettings

log = logging.getLogger("tcr.subsidy")


class SubsidyRuntime:
    """Everything one running subsidy service holds, built once from its settings."""

    def __init__(self, settings: SubsidySettings) -> None:
        self.settings = settings
        self.database = settings.database
        self.rulebook = load_rule_book(*settings.rules_dirs)
        self.db = self.database.async_engine()
        self.queries = Queries(self.db)
        self.signal = NewEventsSignal()
        self.projection = AwardProjection(Engine(self.rulebook))
        self.sink = NotifyingSink(self.db, self.projection, self.signal.ring)
        self.feed = FeedClient(settings.registry_url, settings.registry_feed_key, page_size=settings.subsidy_page_size)
        self.follower = Follower(REGISTRY_FEED, self._source(), self.sink)
        self.resolver = RegistryKeyResolver(settings.registry_url)
        self.authenticator = Authenticator(settings.admin_key, self.resolver, limits=RateLimits())
        # Before each delivery: is the subscriber's key still active? (asks the registry, with the admin key)
        self.key_status = RegistryKeyStatus(settings.registry_url, settings.admin_key or "")
        key_active = self.key_status if settings.admin_key else None
        self.deliveries = DeliveryWorker(self.db, webhooks, self.queries, signal=self.signal, key_active=key_active)
        self.webhook_lease = Lease(self.database.url, "subsidy-webhooks")  # one delivering replica
        self._deliveries: asyncio.Task | None = None
        self._task: asyncio.Task | None = None
        self.started = False

    def _source(self):
        settings = self.settings
        source = (
            PrefetchingSource(self.feed, depth=settings.subsidy_prefetch) if settings.subsidy_prefetch else self.feed
        )
        if settings.subsidy_batch_pages > 1:
            source = BatchingSource(source, settings.subsidy_batch_pages)
        return source

    async def start(self) -> None:
        await asyncio.to_thread(migrate.upgrade, self.database)
        self.signal.bind(asyncio.get_running_loop())
        self.follower.status.position = await self.sink.position()
        if self.settings.subsidy_follow:
            self._task = asyncio.create_task(self.follower.run(), name="subsidy-follower")
        self._deliveries = asyncio.create_task(
            self.webhook_lease.run_while_leader(self.deliveries.lead), name="webhook-lease"
        )
        self.started = True

    async def ready(self) -> bool:
        return self.started

    async def stop(self) -> None:
        if self._deliveries is not None:
            self._deliveries.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._deliveries
        await self.deliveries.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.feed.aclose()
        await self.db.dispose()
        await self.resolver.aclose()
        await self.key_status.aclose()

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: FastAPI) -> AsyncIterator[None]:
        await self.start()
        try:
            yield
        finally:
            await self.stop()


def create_app(settings: SubsidySettings | None = None) -> FastAPI:
    configure_logging()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per long poll is noise
    runtime = SubsidyRuntime(settings or SubsidySettings())
    app = build_app(runtime, lifespan=runtime.lifespan)
    app.state.runtime = runtime
    return app
