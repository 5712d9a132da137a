"""The reporting service over HTTP: the API, the dashboard and its static files, assembled around a runtime
that the composition root (`tcr_reporting.bootstrap`) builds and starts."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Protocol

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from tcr_reporting.adapters.http.api import api_router
from tcr_reporting.adapters.http.dashboard import dashboard_router
from tcr_reporting.adapters.http.what_if import what_if_router
from tcr_shared.feeds.follower import Follower, follower_metrics
from tcr_shared.platform.audit import AuditLog, AuditMiddleware, audit_router
from tcr_shared.platform.auth import Authenticator
from tcr_shared.platform.observability import NATIVE_TELEMETRY_OFF, instrument
from tcr_shared.platform.problems import install_problem_handlers, install_problem_openapi

STATIC = Path(__file__).resolve().parent / "static"
# Route function -> its act in the audit trail (a sign-in without a key id is a refused one).
AUDIT_ACTIONS = {"run": "what_if.run", "login": "dashboard.sign_in"}


class ServedRuntime(Protocol):
    """What the app needs of the runtime to assemble itself (handlers also read its queries, feeds and clock)."""

    authenticator: Authenticator
    audit: AuditLog

    async def is_ready(self) -> bool: ...

    def followers(self) -> list[Follower]: ...


def http_app(runtime: ServedRuntime, lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]]) -> FastAPI:
    """The app over `runtime` (handlers find it at `app.state.runtime`: queries, feeds, clock, authenticator);
    `lifespan` starts and stops it."""
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
    install_problem_openapi(app)
    follower_metrics(instrument(app, "reporting", runtime.is_ready), *runtime.followers())
    app.include_router(api_router(runtime.authenticator.require))
    app.include_router(dashboard_router())
    app.include_router(what_if_router())
    app.include_router(audit_router(lambda: runtime.audit, runtime.authenticator.require))
    app.add_middleware(AuditMiddleware, audit=lambda: runtime.audit, actions=AUDIT_ACTIONS)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
