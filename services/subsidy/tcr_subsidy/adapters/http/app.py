"""HTTP API of the subsidy service (port 8002): ledgers, awards, programmes, status and the award feed."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from prometheus_client import Gauge
from sqlalchemy.ext.asyncio import AsyncEngine

from tcr_shared.feeds.follower import Follower, follower_metrics
from tcr_shared.feeds.server import NewEventsSignal, feed_router
from tcr_shared.language.events.subsidy import SUBSIDY_EVENT_TYPES
from tcr_shared.language.identifiers import canonical_credit_code, credit_code_problem
from tcr_shared.language.policy_time import now_utc, policy_year
from tcr_shared.language.regions import is_known_region
from tcr_shared.language.vocabulary import Programme
from tcr_shared.partners.asyncapi import asyncapi_router
from tcr_shared.partners.webhooks import DeliveryWorker, subscriptions_router
from tcr_shared.platform import page_tokens
from tcr_shared.platform.audit import WEBHOOK_ACTIONS, AuditLog, AuditMiddleware, audit_router
from tcr_shared.platform.auth import Authenticator
from tcr_shared.platform.lease import Lease
from tcr_shared.platform.observability import NATIVE_TELEMETRY_OFF, instrument
from tcr_shared.platform.problems import Problem, field_error, install_problem_handlers, install_problem_openapi
from tcr_subsidy.adapters.http.simulations import simulations_router
from tcr_subsidy.adapters.persistence.queries import AWARD_COLUMNS, Queries
from tcr_subsidy.adapters.persistence.tables import webhooks
from tcr_subsidy.application.projection import AwardProjection
from tcr_subsidy.application.simulation import Simulations
from tcr_subsidy.domain.rules import RuleBook
from tcr_subsidy.domain.terms import plain_text
from tcr_subsidy.settings import SubsidySettings

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]
MIN_YEAR, MAX_YEAR = 2000, 2100
_REGION = re.compile(r"^\d{2}(\d{2}(\d{2})?)?$")
MIN_POSITION_DOC = (
    "Read-your-writes: wait (up to 10 s) until the registry feed position (TCR-Position) is applied; a position "
    "beyond the registry's head is a 409 at once"
)
MAX_POSITION = 2**63 - 1  # feed positions are BIGINT
AUDIT_ACTIONS = {"run": "simulation.run", **WEBHOOK_ACTIONS}  # route function -> its act in the audit trail


class Runtime(Protocol):
    """What the routes read from the running service (built by tcr_subsidy.bootstrap)."""

    settings: SubsidySettings
    rulebook: RuleBook
    db: AsyncEngine
    queries: Queries
    signal: NewEventsSignal
    projection: AwardProjection
    follower: Follower
    authenticator: Authenticator
    deliveries: DeliveryWorker
    simulations: Simulations
    audit: AuditLog
    lease: Lease
    delivery_lease: Lease

    async def ready(self) -> bool: ...

    async def registry_head(self) -> int | None:
        """The registry feed's head now, or None when the registry does not answer."""


def build_app(runtime: Runtime, *, lifespan: Lifespan | None = None) -> FastAPI:
    """The subsidy API's routes and metrics over one runtime; starting and stopping it is the lifespan's job."""
    settings = runtime.settings
    app = FastAPI(
        title="tcr subsidy service",
        version="1.0.0",
        lifespan=lifespan,
        telemetry=NATIVE_TELEMETRY_OFF,
        description="Subsidy awards decided from the registry's feed, with their caps, explained to the fen.",
    )
    install_problem_handlers(app)
    install_problem_openapi(app)
    metrics = instrument(app, "subsidy", ready=runtime.ready)
    follower_metrics(metrics, runtime.follower)  # state, lag and seconds stalled per followed feed
    status = runtime.follower.status
    lag = Gauge(
        "tcr_subsidy_feed_lag_events",
        "Events the registry feed is ahead of this service",
        ["feed"],
        registry=metrics.registry,
    )
    lag.labels(status.feed).set_function(lambda: status.lag_gauge)  # NaN while the head is unknown
    position = Gauge("tcr_subsidy_feed_position", "Registry feed position applied", ["feed"], registry=metrics.registry)
    position.labels(status.feed).set_function(lambda: status.position)
    Gauge("tcr_subsidy_events_applied", "Registry events applied since start", registry=metrics.registry).set_function(
        lambda: status.events_applied
    )
    Gauge(
        "tcr_subsidy_award_events_appended", "Award events appended since start", registry=metrics.registry
    ).set_function(lambda: runtime.projection.awards_total)
    Gauge(
        "tcr_subsidy_events_skipped",
        "Registry events skipped (unknown type or malformed) since start",
        registry=metrics.registry,
    ).set_function(lambda: runtime.projection.skipped_total)

    require = runtime.authenticator.require
    reader = require("analyst")
    app.include_router(feed_router(runtime.queries, runtime.signal, require("partner", "analyst")))
    app.include_router(
        subscriptions_router(
            engine=runtime.db,
            tables=webhooks,
            source=runtime.queries,
            event_types=SUBSIDY_EVENT_TYPES,
            require=require,
            worker=runtime.deliveries,
        )
    )
    app.include_router(asyncapi_router())
    app.include_router(simulations_router(runtime.simulations, require))
    app.include_router(audit_router(lambda: runtime.audit, require))
    app.add_middleware(AuditMiddleware, audit=lambda: runtime.audit, actions=AUDIT_ACTIONS)
    runtime.deliveries.register_metrics(metrics.registry)

    async def caught_up(min_position: int | None) -> None:
        if min_position and min_position > status.position:
            await exists_in_registry(min_position)
            if not await runtime.follower.wait_for(min_position, timeout=10.0):
                raise Problem(
                    503,
                    f"Registry position {min_position} is not applied yet (at {status.position}); retry shortly.",
                    headers={"Retry-After": "1"},
                )

    async def exists_in_registry(min_position: int) -> None:
        """A position the registry has not reached cannot be waited for: answer at once rather than after 10 s.
        The follower's head may be a little old, so a position beyond it is checked with the registry."""
        if status.head is not None and min_position <= status.head:
            return
        head = await runtime.registry_head()
        if head is not None and min_position > head:
            message = f"is beyond the registry feed's head ({head}); pass a TCR-Position the registry returned"
            raise Problem(
                409,
                f"min_position {min_position} {message}.",
                errors=[field_error("min_position", message)],
                head=head,
            )

    def positioned(body: dict) -> JSONResponse:
        return JSONResponse(body, headers={"TCR-Position": str(status.position)})

    @app.get(
        "/v1/beneficiaries/{credit_code}/ledger",
        tags=["awards"],
        summary="A beneficiary's ledger: per programme the cap, awarded (net), remaining and award lines",
    )
    async def ledger(
        credit_code: str,
        year: int | None = Query(None, ge=MIN_YEAR, le=MAX_YEAR, description="Policy year (Asia/Shanghai)"),
        min_position: int | None = Query(None, ge=0, le=MAX_POSITION, description=MIN_POSITION_DOC),
        _principal=Depends(reader),
    ) -> JSONResponse:
        if problem := credit_code_problem(credit_code):
            raise Problem(422, f"credit_code: {problem}", errors=[field_error("credit_code", problem)])
        credit_code = canonical_credit_code(credit_code)  # one party however it is spelled
        await caught_up(min_position)
        body = await runtime.queries.ledger(credit_code, year or policy_year(now_utc()))
        if body is None:
            raise Problem(404, f"No award has ever been decided for beneficiary {credit_code}.")
        return positioned(body)

    @app.get("/v1/contracts/{contract_id}/awards", tags=["awards"], summary="The awards a contract earned, explained")
    async def contract_awards(
        contract_id: str,
        min_position: int | None = Query(None, ge=0, le=MAX_POSITION, description=MIN_POSITION_DOC),
        _principal=Depends(reader),
    ) -> JSONResponse:
        await caught_up(min_position)
        body = await runtime.queries.contract_awards(plain_text(contract_id))  # ids are kept in that form
        if body is None:
            raise Problem(404, f"Contract {contract_id} is not known to the subsidy service (yet).")
        return positioned(body)

    @app.get(
        "/v1/awards",
        tags=["awards"],
        summary="Awards, filtered and paginated; CSV with Accept: text/csv",
        responses={200: {"content": {"application/json": {}, "text/csv": {}}}},
    )
    async def list_awards(
        request: Request,
        year: int | None = Query(None, ge=MIN_YEAR, le=MAX_YEAR),
        programme: Programme | None = Query(None),
        region: str | None = Query(None, description="GB/T 2260 area: 64, 6401, 640100 or a county code"),
        page_token: str | None = Query(None),
        limit: int = Query(100, ge=1, le=1000),
        min_position: int | None = Query(None, ge=0, le=MAX_POSITION, description=MIN_POSITION_DOC),
        _principal=Depends(reader),
    ):
        if region is not None and (not _REGION.match(region) or (len(region) == 6 and not is_known_region(region))):
            raise Problem(
                422,
                f"region: {region!r} is not a GB/T 2260 area code",
                errors=[field_error("region", "expected 2, 4 or 6 digits of a known region")],
            )
        await caught_up(min_position)
        if "text/csv" in request.headers.get("accept", ""):
            return StreamingResponse(
                _csv(runtime.queries, year, programme, region),
                media_type="text/csv; charset=utf-8",
                headers={
                    "Content-Disposition": 'attachment; filename="awards.csv"',
                    "TCR-Position": str(status.position),
                },
            )
        after = page_tokens.decode_text(page_token, "after") if page_token else None
        items, last = await runtime.queries.list_awards(year, programme, region, after, limit)
        return positioned({"awards": items, "next_page_token": page_tokens.encode("after", last) if last else None})

    @app.get("/v1/programmes", tags=["programmes"], summary="The rule sets in force and their history")
    async def programmes(_principal=Depends(reader)) -> dict:
        today = now_utc().date()
        current = runtime.rulebook.in_force_at(now_utc())
        history = []
        for rs in runtime.rulebook.rule_sets:
            until = runtime.rulebook.effective_until(rs)
            history.append(
                {
                    **rs.as_dict(),
                    "effective_until": until.isoformat() if until else None,
                    "in_force": rs is current,
                    "future": rs.effective_from > today,
                }
            )
        return {
            "in_force": current.id if current else None,
            "rule_sets": history,
            "rounding": "half-up to the fen (0.01 yuan)",
            "policy_year": "certification date in Asia/Shanghai",
        }

    @app.get("/v1/status", tags=["status"], summary="Feeds followed: position processed, head and lag")
    async def status_endpoint(_principal=Depends(reader)) -> dict:
        skipped = await runtime.queries.skipped()
        return {
            "feeds": [
                {
                    **status.as_dict(),
                    "url": f"{settings.registry_url.rstrip('/')}/v1/events",
                    "following": settings.subsidy_follow,
                    "role": runtime.lease.role,  # leader: this replica applies the feed; standby: another does
                    "leader_since": runtime.lease.as_dict()["leader_since"],
                }
            ],
            "award_feed": {"head": await runtime.queries.head()},
            "webhook_delivery": {"role": runtime.delivery_lease.role},
            "skipped_events": {"count": len(skipped), "recent": skipped[-20:]},
        }

    return app


async def _csv(queries: Queries, year, programme, region) -> AsyncIterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(AWARD_COLUMNS)
    async for item in queries.iter_awards(year, programme, region):
        writer.writerow([item[c] if item[c] is not None else "" for c in AWARD_COLUMNS])
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
