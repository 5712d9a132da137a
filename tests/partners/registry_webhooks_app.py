"""The real registry with webhooks mounted by exactly the lines docs/partners.md gives its owner, for the
partner tests and the benchmark until the registry mounts them itself (then this returns the registry as is).

`uvicorn tests.partners.registry_webhooks_app:create_app --factory`
"""

from __future__ import annotations

import contextlib

from fastapi import FastAPI
from sqlalchemy import MetaData

from tcr_registry import bootstrap
from tcr_registry.adapters.feeds.event_log import LazyEventLog
from tcr_shared.language.events.registry import REGISTRY_EVENT_TYPES
from tcr_shared.partners.webhooks import DeliveryWorker, subscriptions_router, webhook_tables


def mounts_subscriptions(app: FastAPI) -> bool:
    """Whether the service serves `/v1/subscriptions` itself. Asked of its OpenAPI paths: FastAPI 0.165 lists an
    included router as one `_IncludedRouter` entry without a `path`, so a look through `app.routes` missed the
    service's own router, mounted a second one and a second worker, and the router's wake-ups (`reload`) went to
    the worker that was not running: a new or resumed subscription waited for the supervisor's 10 s rescan."""
    paths = app.openapi().get("paths", {})
    app.openapi_schema = None  # built again when first asked, with whatever is included after this
    return "/v1/subscriptions" in paths


def create_app() -> FastAPI:
    app = bootstrap.create_app()
    if mounts_subscriptions(app):
        return app  # the registry mounts webhooks itself now
    service = app.state.runtime
    webhooks = webhook_tables(MetaData())  # the registry would add these to its own metadata and migrations

    # --- the wiring, as in docs/partners.md ---
    event_log = LazyEventLog(lambda: service.event_log)
    service.webhooks = DeliveryWorker(service.engine, webhooks, event_log, signal=service.signal)
    app.include_router(
        subscriptions_router(
            engine=service.engine,
            tables=webhooks,
            source=event_log,
            event_types=REGISTRY_EVENT_TYPES,
            require=service.require,
            worker=service.webhooks,
        )
    )
    registry_lifespan = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app_: FastAPI):
        async with registry_lifespan(app_):
            async with service.engine.begin() as conn:  # stands in for the registry's alembic migration
                await conn.run_sync(webhooks.subscriptions.metadata.create_all)
            service.webhooks.start()
            try:
                yield
            finally:
                await service.webhooks.stop()

    app.router.lifespan_context = lifespan
    return app
