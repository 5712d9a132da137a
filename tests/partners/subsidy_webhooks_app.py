"""The real subsidy service with webhooks mounted by the lines docs/partners.md gives its owner (until the
service mounts them itself; then this returns it as is).

`uvicorn tests.partners.subsidy_webhooks_app:create_app --factory`
"""

from __future__ import annotations

import contextlib

from fastapi import FastAPI
from sqlalchemy import MetaData

from tcr_shared.language.events.subsidy import SUBSIDY_EVENT_TYPES
from tcr_shared.partners.webhooks import DeliveryWorker, subscriptions_router, webhook_tables
from tcr_shared.platform.auth import Authenticator, RegistryKeyResolver
from tcr_subsidy import bootstrap as subsidy_app
from tcr_subsidy.settings import SubsidySettings
from tests.partners.registry_webhooks_app import mounts_subscriptions


def create_app() -> FastAPI:
    settings = SubsidySettings()
    app = subsidy_app.create_app(settings)
    if mounts_subscriptions(app):
        return app
    service = app.state.runtime
    require = Authenticator(settings.admin_key, RegistryKeyResolver(settings.registry_url)).require  # as in create_app
    webhooks = webhook_tables(MetaData())  # the service would add these to its tables.py metadata + a migration

    # --- the wiring, as in docs/partners.md ---
    worker = DeliveryWorker(service.db, webhooks, service.queries, signal=service.signal)
    app.include_router(
        subscriptions_router(
            engine=service.db,
            tables=webhooks,
            source=service.queries,
            event_types=SUBSIDY_EVENT_TYPES,
            require=require,
            worker=worker,
        )
    )
    subsidy_lifespan = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app_: FastAPI):
        async with subsidy_lifespan(app_):
            async with service.db.begin() as conn:  # stands in for the service's alembic migration
                await conn.run_sync(webhooks.subscriptions.metadata.create_all)
            worker.start()
            try:
                yield
            finally:
                await worker.stop()

    app.router.lifespan_context = lifespan
    return app
