"""The reporting service's composition root (port 8003): `create_app` builds the service from its settings
(`uvicorn --factory tcr_reporting.bootstrap:create_app`, or `tcr-reporting serve`).

On start: migrations, then two followers (registry contracts, subsidy awards), each applying pages of events
and its position in one transaction through the shared `SqlProjectionSink`. The followers run only while this
process holds the projection lease (one writer per database: the leader replica, or `tcr-reporting rebuild`);
a standby serves reads from the figures the leader writes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from tcr_reporting.adapters.feeds import FollowedFeed, followed_feed
from tcr_reporting.adapters.http.app import http_app
from tcr_reporting.adapters.persistence.migrate import upgrade
from tcr_reporting.adapters.persistence.projection import registry_sink, subsidy_sink
from tcr_reporting.adapters.persistence.projection_lease import ProjectionLease
from tcr_reporting.adapters.persistence.store import FigureStore
from tcr_reporting.adapters.persistence.tables import FEED_REGISTRY, FEED_SUBSIDY, audit_log
from tcr_reporting.adapters.subsidy_gateway import SubsidyGateway
from tcr_reporting.application.queries import ReportingQueries
from tcr_reporting.settings import ReportingSettings
from tcr_shared.feeds.follower import Follower
from tcr_shared.language.policy_time import now_utc
from tcr_shared.platform import auth
from tcr_shared.platform.audit import AuditLog
from tcr_shared.platform.database import database_ready
from tcr_shared.platform.lease import stop_task
from tcr_shared.platform.observability import all_ready, configure_logging
from tcr_shared.platform.ratelimit import RateLimits

log = logging.getLogger("tcr.reporting")


@dataclass
class ReportingRuntime:
    """Everything one reporting process holds: the figure store and its queries, the two followed feeds, the one
    `Authenticator` (API and dashboard alike) and the clock (tests set it)."""

    settings: ReportingSettings
    engine: AsyncEngine
    store: FigureStore
    feeds: dict[str, FollowedFeed]
    resolver: auth.RegistryKeyResolver
    authenticator: auth.Authenticator
    lease: ProjectionLease
    subsidy: SubsidyGateway
    audit: AuditLog
    queries: ReportingQueries = field(init=False)
    clock: Callable[[], datetime] = now_utc
    tasks: list[asyncio.Task] = field(default_factory=list)
    ready: bool = False

    def __post_init__(self) -> None:
        # the clock is read through the runtime, so a test that replaces it moves the queries' "now" too
        self.queries = ReportingQueries(self.store, self.version, lambda: self.clock(), cache=self.settings.query_cache)

    async def positions(self) -> dict[str, int]:
        return dict(zip(self.feeds, await self.version(), strict=True))

    async def version(self) -> tuple:
        """The projection's version: the positions applied (by this replica as the leader, or read from the
        database by `Follower.watch` as a standby)."""
        return tuple(feed.follower.status.position for feed in self.feeds.values())

    def followers(self) -> list[Follower]:
        return [feed.follower for feed in self.feeds.values()]

    async def follow_feeds(self) -> None:
        """Apply both feeds (while this process holds the lease: cancelled when it is lost)."""
        await asyncio.gather(*(follower.run() for follower in self.followers()))

    async def watch_feeds(self) -> None:
        """As a standby: keep the followers' positions (the version, /v1/status) current from the database."""
        await asyncio.gather(*(follower.watch() for follower in self.followers()))

    async def is_ready(self) -> bool:
        """Ready once started, while the database answers within 2 s and no follower is stalled."""
        return (
            self.ready
            and await all_ready(database_ready(self.engine), *(follower.ready for follower in self.followers()))()
        )

    async def start(self) -> None:
        await asyncio.to_thread(upgrade, self.settings.database)
        self.tasks.append(
            asyncio.create_task(self.lease.run_while_leader(self.follow_feeds, self.watch_feeds), name="follow-feeds")
        )
        self.ready = True
        log.info("reporting started", extra={"service": "reporting"})

    async def stop(self) -> None:
        self.ready = False
        for task in self.tasks:
            await stop_task(task)
        for feed in self.feeds.values():
            await feed.client.aclose()
        await self.resolver.aclose()
        await self.subsidy.aclose()
        await self.engine.dispose()


def build_runtime(settings: ReportingSettings) -> ReportingRuntime:
    engine = settings.database.async_engine()
    key = settings.effective_feed_key
    feeds = {
        name: followed_feed(
            name,
            url,
            key,
            sink,
            settings.feed_wait,
            settings.follower_stall_after,
            batch_pages=settings.reporting_batch_pages,
            prefetch=settings.reporting_prefetch,
        )
        for name, url, sink in (
            (FEED_REGISTRY, settings.registry_url, registry_sink(engine)),
            (FEED_SUBSIDY, settings.subsidy_url, subsidy_sink(engine)),
        )
    }
    resolver = auth.RegistryKeyResolver(settings.registry_url)
    return ReportingRuntime(
        settings=settings,
        engine=engine,
        store=FigureStore(engine),
        feeds=feeds,
        resolver=resolver,
        authenticator=auth.Authenticator(settings.admin_key, resolver, limits=RateLimits()),
        lease=ProjectionLease(settings.database),
        subsidy=SubsidyGateway(settings.subsidy_url),
        audit=AuditLog(engine, audit_log),
    )


def create_app(settings: ReportingSettings | None = None) -> FastAPI:
    settings = settings or ReportingSettings()
    configure_logging(settings.log_level)
    runtime = build_runtime(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    return http_app(runtime, lifespan)


__all__ = ["ReportingRuntime", "build_runtime", "create_app"]
