"""The registry's FastAPI app, assembled from a runtime that tcr_registry.bootstrap builds: routers, error
handlers and instrumentation. Nothing here starts or owns a resource."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import FastAPI

from tcr_registry.adapters.http.admin import admin_router
from tcr_registry.adapters.http.audit import ACTIONS
from tcr_registry.adapters.http.contracts import contracts_router
from tcr_registry.adapters.http.errors import install_domain_errors
from tcr_registry.adapters.http.imports import imports_router
from tcr_registry.adapters.persistence.models import webhooks
from tcr_shared.feeds.server import feed_router
from tcr_shared.language.events.registry import REGISTRY_EVENT_TYPES
from tcr_shared.partners.asyncapi import asyncapi_router
from tcr_shared.partners.webhooks import subscriptions_router
from tcr_shared.platform.audit import AuditMiddleware, audit_router
from tcr_shared.platform.observability import NATIVE_TELEMETRY_OFF, instrument
from tcr_shared.platform.problems import install_problem_handlers, install_problem_openapi


def build_app(runtime: Any, lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]]) -> FastAPI:
    """The app over `runtime` (a tcr_registry.bootstrap.RegistryRuntime), whose resources `lifespan` starts."""
    app = FastAPI(
        title="tcr registry 技术合同认定登记",
        version="1.0.0",
        lifespan=lifespan,
        telemetry=NATIVE_TELEMETRY_OFF,
        description="Registration and certification of technology contracts; the public event feed.",
    )
    app.state.runtime = runtime
    install_problem_handlers(app)
    install_problem_openapi(app)
    install_domain_errors(app)

    metrics = instrument(app, "registry", runtime.readiness, metrics=runtime.metrics)
    reader = runtime.require("partner", "analyst")
    app.include_router(feed_router(runtime.feed, runtime.signal, reader, heartbeat=runtime.settings.sse_heartbeat))
    app.include_router(contracts_router(runtime))
    app.include_router(admin_router(runtime))
    app.include_router(audit_router(lambda: runtime.audit, runtime.require))
    app.include_router(imports_router(runtime))
    app.include_router(
        subscriptions_router(
            engine=runtime.engine,
            tables=webhooks,
            source=runtime.feed,
            event_types=REGISTRY_EVENT_TYPES,
            require=runtime.require,
            worker=runtime.webhooks,
        )
    )
    app.include_router(asyncapi_router())
    app.add_middleware(AuditMiddleware, audit=lambda: runtime.audit, actions=ACTIONS, redact=runtime.audit_target)
    runtime.webhooks.register_metrics(metrics.registry)
    return app
