"""`/v1/subscriptions`: partners manage their webhook subscriptions (partner role; admin may do all).

A partner sees and changes only the subscriptions its own key created (others answer 404); an admin sees all.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from tcr_shared.feeds.server import EventLog
from tcr_shared.partners.webhooks.filters import FilterError, validate_event_types, validate_regions
from tcr_shared.partners.webhooks.settings import WebhookSettings
from tcr_shared.partners.webhooks.tables import WebhookTables
from tcr_shared.partners.webhooks.urls import UnsafeUrl, check_url
from tcr_shared.partners.webhooks.worker import KEY_REVOKED, DeliveryWorker, aware, utcnow
from tcr_shared.platform.auth import Principal
from tcr_shared.platform.problems import Problem, field_error
from tcr_shared.platform.sealing import seal


class SubscriptionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="http(s) URL that receives one POST per event")
    event_types: list[str] = Field(["*"], description="Types or patterns, e.g. tcr.registry.contract.*")
    regions: list[str] | None = Field(None, description="Prefecture (4 digits) or county (6 digits) codes")
    start: str | int = Field("now", description='"now", or a position: events after it are delivered ("0" = all)')
    description: str | None = Field(None, max_length=500)


class SubscriptionUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = None
    event_types: list[str] | None = None
    regions: list[str] | None = None
    description: str | None = Field(None, max_length=500)
    status: Literal["active", "paused"] | None = Field(None, description='"active" resumes a paused subscription')


def new_webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _iso(value: datetime | None) -> str | None:
    value = aware(value)
    return value.isoformat().replace("+00:00", "Z") if value else None


def subscription_view(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "url": row["url"],
        "description": row["description"],
        "event_types": row["event_types"],
        "regions": row["regions"],
        "status": row["status"],
        "paused_reason": row["paused_reason"],
        "position": row["position"],
        "failed_attempts": row["failed_attempts"],
        "next_retry_at": _iso(row["next_retry_at"]),
        "last_delivered_at": _iso(row["last_delivered_at"]),
        "created_at": _iso(row["created_at"]),
        "updated_at": _iso(row["updated_at"]),
    }


def subscriptions_router(
    *,
    engine: AsyncEngine,
    tables: WebhookTables,
    source: EventLog,
    event_types: Iterable[str],
    require: Callable[..., Any],
    worker: DeliveryWorker | None = None,
    settings: WebhookSettings | None = None,
    prefix: str = "/v1/subscriptions",
) -> APIRouter:
    """`require` is the service's `Authenticator(...).require`; `event_types` what this service publishes."""
    known_types = sorted(event_types)
    settings = settings or (worker.settings if worker else WebhookSettings())
    s, d = tables.subscriptions, tables.deliveries
    router = APIRouter(prefix=prefix, tags=["webhooks"])
    partner = Depends(require("partner"))

    def changed(sub_id: str) -> None:
        if worker is not None:
            worker.reload(sub_id)

    async def validated_url(url: str) -> str:
        try:
            await check_url(url, **settings.target_rules())
        except UnsafeUrl as exc:
            raise Problem(422, f"url: {exc}", errors=[field_error("url", str(exc))]) from exc
        return url

    def validated_filters(
        types: list[str] | None, regions: list[str] | None
    ) -> tuple[list[str] | None, list[str] | None]:
        try:
            types = validate_event_types(types, known_types) if types is not None else None
            regions = validate_regions(regions) if regions is not None else None
        except FilterError as exc:
            raise Problem(422, f"{exc.field}: {exc.message}", errors=[field_error(exc.field, exc.message)]) from exc
        return types, regions

    async def position_of(value: str | int, field: str) -> int:
        head = await source.head()
        if value == "now":
            return head
        text = str(value)
        if not text.isdigit():
            raise Problem(
                422,
                f'{field}: give "now" or a position (a non-negative integer)',
                errors=[field_error(field, 'give "now" or a position (a non-negative integer)')],
            )
        position = int(text)
        if position > head:
            message = f"position {position} is beyond the last event ({head})"
            raise Problem(422, f"{field}: {message}", errors=[field_error(field, message)])
        return position

    async def owned(sub_id: str, principal: Principal) -> dict[str, Any]:
        if len(sub_id) > s.c.id.type.length or not sub_id.isprintable():  # never an id; PostgreSQL refuses NUL
            raise Problem(404, "There is no such subscription for this key.")
        async with engine.connect() as conn:
            row = (await conn.execute(select(s).where(s.c.id == sub_id))).mappings().first()
        if row is None or row["status"] == "deleted" or (not principal.is_admin and row["owner"] != principal.key_id):
            raise Problem(404, f"There is no subscription {sub_id} for this key.")
        return dict(row)

    async def write(sub_id: str, **values: Any) -> dict[str, Any]:
        values["updated_at"] = utcnow()
        async with engine.begin() as conn:
            await conn.execute(update(s).where(s.c.id == sub_id).values(generation=s.c.generation + 1, **values))
            row = (await conn.execute(select(s).where(s.c.id == sub_id))).mappings().one()
        changed(sub_id)
        return dict(row)

    @router.post("", status_code=201, summary="Subscribe a URL to events (the secret is shown only here)")
    async def create(body: SubscriptionCreate, response: Response, principal: Principal = partner) -> dict:
        types, regions = validated_filters(body.event_types, body.regions or [])
        url = await validated_url(body.url)
        position = await position_of(body.start, "start")
        now = utcnow()
        secret = new_webhook_secret()
        row = {
            "id": f"sub_{uuid.uuid4().hex}",
            "owner": principal.key_id,
            "url": url,
            "description": body.description,
            "event_types": types,
            "regions": regions,
            "secret": seal(secret),  # at rest only under the master key
            "status": "active",
            "paused_reason": None,
            "position": position,
            "generation": 0,
            "failing_since": None,
            "failed_attempts": 0,
            "next_retry_at": None,
            "last_delivered_at": None,
            "created_at": now,
            "updated_at": now,
        }
        async with engine.begin() as conn:
            await conn.execute(s.insert().values(**row))
        changed(row["id"])
        response.headers["Location"] = f"{prefix}/{row['id']}"
        return {**subscription_view(row), "secret": secret}

    @router.get("", summary="The subscriptions of this key (all, for an admin)")
    async def list_subscriptions(principal: Principal = partner) -> dict:
        query = select(s).where(s.c.status != "deleted").order_by(s.c.created_at, s.c.id)
        if not principal.is_admin:
            query = query.where(s.c.owner == principal.key_id)
        async with engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return {"subscriptions": [subscription_view(dict(r)) for r in rows]}

    @router.get("/{sub_id}")
    async def get_subscription(sub_id: str, principal: Principal = partner) -> dict:
        return subscription_view(await owned(sub_id, principal))

    @router.patch("/{sub_id}", summary='Change URL or filters; "status": "active" resumes, "paused" pauses')
    async def patch_subscription(sub_id: str, body: SubscriptionUpdate, principal: Principal = partner) -> dict:
        row = await owned(sub_id, principal)
        types, regions = validated_filters(body.event_types, body.regions)
        values: dict[str, Any] = {}
        if body.url is not None:
            values["url"] = await validated_url(body.url)
        if types is not None:
            values["event_types"] = types
        if regions is not None:
            values["regions"] = regions
        if "description" in body.model_fields_set:
            values["description"] = body.description
        if body.status == "active" and row["paused_reason"] == KEY_REVOKED and not principal.is_admin:
            raise Problem(
                403, "This subscription was paused because its API key was revoked; only an admin resumes it."
            )
        if body.status == "active" and row["status"] != "active":
            values.update(
                status="active", paused_reason=None, failed_attempts=0, failing_since=None, next_retry_at=None
            )
        elif body.status == "paused" and row["status"] != "paused":
            values.update(status="paused", paused_reason="paused by the subscriber", next_retry_at=None)
        return subscription_view(await write(sub_id, **values))

    @router.delete("/{sub_id}", status_code=204)
    async def delete_subscription(sub_id: str, principal: Principal = partner) -> Response:
        await owned(sub_id, principal)
        await write(sub_id, status="deleted", next_retry_at=None)
        return Response(status_code=204)

    @router.post(
        "/{sub_id}/replay",
        status_code=202,
        summary="Deliver again every matching event from position `from` (inclusive) onwards",
    )
    async def replay(sub_id: str, from_: str = Query(..., alias="from"), principal: Principal = partner) -> dict:
        await owned(sub_id, principal)
        first = await position_of(from_, "from")
        values = dict(position=max(first - 1, 0), failed_attempts=0, failing_since=None, next_retry_at=None)
        return subscription_view(await write(sub_id, **values))

    @router.get("/{sub_id}/deliveries", summary="Delivery attempts, newest first (status codes, errors, next retry)")
    async def deliveries(sub_id: str, limit: int = Query(50, ge=1, le=1000), principal: Principal = partner) -> dict:
        row = await owned(sub_id, principal)
        async with engine.connect() as conn:
            rows = (
                (
                    await conn.execute(
                        select(d).where(d.c.subscription_id == sub_id).order_by(d.c.id.desc()).limit(limit)
                    )
                )
                .mappings()
                .all()
            )
        return {
            "subscription": subscription_view(row),
            "deliveries": [
                {
                    "webhook_id": r["webhook_id"],
                    "event_type": r["event_type"],
                    "position": r["event_position"],
                    "attempt": r["attempt"],
                    "attempted_at": _iso(r["attempted_at"]),
                    "status_code": r["status_code"],
                    "outcome": r["outcome"],
                    "error": r["error"],
                    "duration_ms": r["duration_ms"],
                    "next_retry_at": _iso(r["next_retry_at"]),
                }
                for r in rows
            ],
        }

    return router
