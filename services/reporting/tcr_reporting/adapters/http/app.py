"""The reporting service's app factory: `uvicorn --factory tcr_reporting.adapters.http.app:create_app` (port 8003).

On start: migrations, then two followers (registry contracts, subsidy awards), each applying pages of events
and its position in one transaction through the shared `SqlProjectionSink`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from sqlalchemy.ext.asyncio import AsyncEngine

from tcr_reporting.adapters.feeds import FollowedFeed, followed_feed
from tcr_reporting.adapters.http.api import api_router
from tcr_reporting.adapters.http.dashboard import dashboard_router
from tcr_reporting.adapters.http.fastpath import MetricsFastPath
from tcr_reporting.adapters.persistence.migrate import upgrade
from tcr_reporting.adapters.persistence.projection import registry_sink, subsidy_sink
from tcr_reporting.adapters.persistence.store import FigureStore
from tcr_reporting.adapters.persistence.tables import FEED_REGISTRY, FEED_SUBSIDY
from tcr_reporting.application.queries import ReportingQueries
from tcr_reporting.settings import Settings
from tcr_shared.language.policy_time import now_utc
from tcr_shared.platform import auth
from tcr_shared.platform.observability import NATIVE_TELEMETRY_OFF, configure_logging, instrument
from tcr_shared.platform.problems import install_problem_handlers

STATIC = Path(__file__).resolve().parent / "static"
log = logging.getLogger("tcr.reporting")


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    store: FigureStore
    queries: ReportingQueries
    feeds: dict[str, FollowedFeed]
    resolver: auth.RegistryKeyResolver
    clock: callable = now_utc
    tasks: list[asyncio.Task] = field(default_factory=list)
    ready: bool = False

    def positions(self) -> dict[str, int]:
        return {name: feed.follower.status.position for name, feed in self.feeds.items()}

    async def version(self) -> tuple:
        return tuple(feed.follower.status.position for feed in self.feeds.values())


def build_runtime(settings: Settings) -> Runtime:
    database = settings.database
    engine = database.async_engine()
    store = FigureStore(engine)
    key = settings.effective_feed_key
    feeds = {
        FEED_REGISTRY: followed_feed(
            FEED_REGISTRY, settings.registry_url, key, registry_sink(engine), settings.feed_wait
        ),
        FEED_SUBSIDY: followed_feed(FEED_SUBSIDY, settings.subsidy_url, key, subsidy_sink(engine), settings.feed_wait),
    }
    runtime = Runtime(
        settings=settings,
        engine=engine,
        store=store,
        queries=None,
        feeds=feeds,  # type: ignore[arg-type]
        resolver=auth.RegistryKeyResolver(settings.registry_url),
    )
    runtime.queries = ReportingQueries(store, runtime.version, lambda: runtime.clock(), cache=settings.query_cache)
    return runtime


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings.log_level)
    runtime = build_runtime(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(upgrade, settings.database)
        for feed in runtime.feeds.values():
            runtime.tasks.append(asyncio.create_task(feed.follower.run(), name=f"follow-{feed.name}"))
        runtime.ready = True
        log.info("reporting started", extra={"service": "reporting"})
        try:
            yield
        finally:
            runtime.ready = False
            for task in runtime.tasks:
                task.cancel()
            for task in runtime.tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            for feed in runtime.feeds.values():
                await feed.client.aclose()
            await runtime.resolver.aclose()
            await runtime.engine.dispose()

    app = FastAPI(
        title="tcr reporting",
        version="1.0.0",
        description="County assessment metrics (clause 七), the annual report (clause 十六) and a dashboard, "
        "projected from the registry's and the subsidy service's feeds.",
        lifespan=lifespan,
        telemetry=NATIVE_TELEMETRY_OFF,
    )
    app.state.runtime = runtime
    install_problem_handlers(app)

    async def ready() -> bool:
        if not runtime.ready:
            return False
        try:
            return await runtime.store.ping()
        except Exception:  # database down
            return False

    if settings.fast_path:
        # added before instrument(): it runs inside RequestContext (request id, metrics, access log)
        app.add_middleware(MetricsFastPath, runtime=runtime)
    instrument(app, "reporting", ready)
    require = auth.Authenticator(settings.admin_key, runtime.resolver).require
    app.include_router(api_router(require))
    app.include_router(dashboard_router())
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
