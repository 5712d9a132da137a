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


def create_app() -> FastAPI:
    app = bootstrap.create_app()
    if any(getattr(route, "path", "") == "/v1/subscriptions" for route in app.routes):
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
