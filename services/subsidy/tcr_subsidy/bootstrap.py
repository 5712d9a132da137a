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
from tcr_shared.feeds.sources import BatchingSource, ObservedFeed, PrefetchingSource
from tcr_shared.partners.webhooks import DeliveryWorker
from tcr_shared.platform.audit import AuditLog
from tcr_shared.platform.auth import Authenticator, RegistryKeyResolver, RegistryKeyStatus
from tcr_shared.platform.database import database_ready
from tcr_shared.platform.lease import Lease, stop_task
from tcr_shared.platform.observability import configure_logging
from tcr_shared.platform.ratelimit import RateLimits
from tcr_subsidy.adapters.feeds import NotifyingSink
from tcr_subsidy.adapters.http.app import build_app
from tcr_subsidy.adapters.persistence import migrate
from tcr_subsidy.adapters.persistence.projection_lock import FOLLOWER_LEASE, held_while_following
from tcr_subsidy.adapters.persistence.queries import Queries
from tcr_subsidy.adapters.persistence.simulations import SqlSimulationStore
from tcr_subsidy.adapters.persistence.tables import audit_log, webhooks
from tcr_subsidy.adapters.rule_files import load_rule_book
from tcr_subsidy.application.projection import REGISTRY_FEED, AwardProjection
from tcr_subsidy.application.simulation import Simulations
from tcr_subsidy.domain.decision import Engine
from tcr_subsidy.settings import SubsidySettings

log = logging.getLogger("tcr.subsidy")
DELIVERY_LEASE = "subsidy-webhooks"
REGISTRY_HEAD_TIMEOUT = 2.0  # seconds: asking the registry's head for a min_position beyond the known one


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
        self.follower = Follower(REGISTRY_FEED, self._source(), self.sink, stall_after=settings.subsidy_stall_after)
        # One replica applies the feed (PostgreSQL advisory lock); `tcr-subsidy rebuild` takes the same lock.
        self.lease = Lease(self.database.url, FOLLOWER_LEASE)
        # What-if simulations replay the history the live projection has applied (read from the same feed).
        self.simulations = Simulations(
            self.rulebook,
            self.feed,
            SqlSimulationStore(self.db),
            lambda: self.follower.status.position,
            job_after=settings.subsidy_simulation_job_after,
        )
        self.resolver = RegistryKeyResolver(settings.registry_url)
        self.audit = AuditLog(self.db, audit_log)  # every write and administrative act (GET /v1/audit)
        self.authenticator = Authenticator(settings.admin_key, self.resolver, limits=RateLimits())
        # Before each delivery: is the subscriber's key still active? (asks the registry, with the admin key)
        self.key_status = RegistryKeyStatus(settings.registry_url, settings.admin_key or "")
        key_active = self.key_status if settings.admin_key else None
        # One replica delivers webhooks (a lease of its own: it may be another replica than the follower's).
        self.deliveries = DeliveryWorker(self.db, webhooks, self.queries, signal=self.signal, key_active=key_active)
        self.delivery_lease = Lease(self.database.url, DELIVERY_LEASE)
        self._tasks: list[asyncio.Task] = []
        self.started = False
        self._database_ready = database_ready(self.db)

    def _source(self):
        settings = self.settings
        # ObservedFeed says whether the registry answers, so /v1/status can say `unreachable` instead of guessing.
        observed = ObservedFeed(self.feed)
        source = PrefetchingSource(observed, depth=settings.subsidy_prefetch) if settings.subsidy_prefetch else observed
        if settings.subsidy_batch_pages > 1:
            source = BatchingSource(source, settings.subsidy_batch_pages)
        return source

    async def start(self) -> None:
        await asyncio.to_thread(migrate.upgrade, self.database)
        self.signal.bind(asyncio.get_running_loop())
        self.follower.status.position = await self.sink.position()
        failed = await self.simulations.recover()  # jobs a stopped process left running read `failed`
        if failed:
            log.warning("%d simulation job(s) left unfinished by a previous run now read failed", failed)
        if self.settings.subsidy_follow:
            following = self.lease.run_while_leader(self._follow, standby=self.follower.watch)
            self._tasks.append(asyncio.create_task(following, name="subsidy-follower"))
        delivering = self.delivery_lease.run_while_leader(self._deliver)
        self._tasks.append(asyncio.create_task(delivering, name="subsidy-webhooks"))
        self.started = True

    async def _follow(self) -> None:
        async with held_while_following(self.database):  # SQLite: no rebuild runs meanwhile
            await self.follower.run()

    async def _deliver(self) -> None:
        try:
            await self.deliveries.run()
        finally:  # the lease is lost (or the service stops): no subscription task may go on delivering
            await self.deliveries.pause()

    async def ready(self) -> bool:
        """Started, the database answers (/readyz fails while it is unreachable and recovers by itself), and the
        follower is not stalled on an event."""
        return self.started and await self._database_ready() and await self.follower.ready()

    async def registry_head(self) -> int | None:
        try:
            async with asyncio.timeout(REGISTRY_HEAD_TIMEOUT):
                page = await self.feed.page(self.follower.status.position, limit=1)
        except Exception as exc:  # unreachable or slow: the caller waits as before
            log.info("registry head unknown: %r", exc)
            return None
        head = max(page.head, page.next_after)
        self.follower.status.head = max(self.follower.status.head or 0, head)
        return head

    async def stop(self) -> None:
        await self.simulations.stop()
        for task in self._tasks:
            await stop_task(task)
        await self.deliveries.stop()
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
    runtime = SubsidyRuntime(settings or SubsidySettings())
    app = build_app(runtime, lifespan=runtime.lifespan)
    app.state.runtime = runtime
    return app
