"""Administration: registration points and API keys; and /v1/whoami, which the other services use to
learn who a key belongs to."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from tcr_registry.adapters.http import schemas
from tcr_registry.adapters.persistence.models import api_keys, points
from tcr_shared.language.regions import ningxia_regions
from tcr_shared.platform.auth import Principal, hash_key, new_secret
from tcr_shared.platform.problems import Problem

audit = logging.getLogger("tcr.registry.audit")


def admin_router(service) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["administration"])
    admin = service.require("admin")
    anyone = service.require("point", "partner", "analyst")

    @router.get("/whoami", summary="Who this API key belongs to")
    async def whoami(principal: Principal = Depends(anyone)):
        return {
            "key_id": principal.key_id,
            "role": principal.role,
            "point_id": principal.point_id,
            "jurisdiction": principal.jurisdiction,
            "point_number": principal.point_number,
        }

    @router.post("/points", status_code=201, summary="Register a registration point (技术合同登记点)")
    async def create_point(body: schemas.PointIn, principal: Principal = Depends(admin)):
        point_id = str(uuid.uuid4())
        try:
            async with service.engine.begin() as conn:
                await conn.execute(
                    insert(points).values(
                        id=point_id,
                        number=body.number,
                        name=body.name,
                        jurisdiction=body.jurisdiction,
                        created_by=principal.key_id,
                    )
                )
        except IntegrityError:
            raise Problem(
                409, f"Point number {body.number} already exists in jurisdiction {body.jurisdiction}.", title="Conflict"
            ) from None
        audit.info("point created", extra={"service": "registry"})
        view = _point_view(point_id, body.number, body.name, body.jurisdiction)
        return JSONResponse(view, status_code=201, headers={"Location": f"/v1/points/{point_id}"})

    @router.get("/points", summary="All registration points")
    async def list_points(_: Principal = Depends(service.require("point", "partner", "analyst"))):
        async with service.engine.connect() as conn:
            rows = (await conn.execute(select(points).order_by(points.c.jurisdiction, points.c.number))).all()
        return {"points": [_point_view(r.id, r.number, r.name, r.jurisdiction) for r in rows]}

    @router.post("/api-keys", status_code=201, summary="Issue an API key; the secret is shown only once")
    async def create_key(body: schemas.ApiKeyIn, principal: Principal = Depends(admin)):
        if body.role == "point":
            if not body.point_id:
                raise Problem(
                    422,
                    "A key of role 'point' needs the point_id it acts for.",
                    errors=[{"field": "point_id", "message": "required for role point"}],
                )
            async with service.engine.connect() as conn:
                exists = await conn.scalar(select(points.c.id).where(points.c.id == body.point_id))
            if not exists:
                raise Problem(
                    422,
                    f"There is no registration point {body.point_id}.",
                    errors=[{"field": "point_id", "message": "unknown point"}],
                )
        elif body.point_id:
            raise Problem(
                422,
                "Only keys of role 'point' belong to a point.",
                errors=[{"field": "point_id", "message": "only for role point"}],
            )
        key_id, secret = str(uuid.uuid4()), new_secret()
        async with service.engine.begin() as conn:
            await conn.execute(
                insert(api_keys).values(
                    id=key_id,
                    key_hash=hash_key(secret),
                    role=body.role,
                    point_id=body.point_id,
                    label=body.label,
                    created_by=principal.key_id,
                )
            )
        audit.info("api key issued", extra={"service": "registry"})
        return {
            "id": key_id,
            "role": body.role,
            "point_id": body.point_id,
            "label": body.label,
            "secret": secret,
            "note": "Store the secret now: only its SHA-256 is kept, it cannot be shown again.",
        }

    @router.delete("/api-keys/{key_id}", status_code=204, summary="Revoke an API key")
    async def revoke_key(key_id: str, _: Principal = Depends(admin)):
        async with service.engine.begin() as conn:
            result = await conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=_now())
            )
        if result.rowcount == 0:
            raise Problem(404, f"There is no active API key {key_id}.")
        service.keys.forget()

    @router.get("/regions", summary="Ningxia's GB/T 2260 codes with Chinese and English names")
    async def regions():
        return {
            "regions": [
                {"code": r.code, "name": r.name, "level": r.level, "parent": r.parent}
                for r in ningxia_regions().values()
            ]
        }

    return router


def _point_view(point_id: str, number: str, name: str, jurisdiction: str) -> dict:
    return {
        "id": point_id,
        "number": number,
        "name": name,
        "jurisdiction": jurisdiction,
        "registration_prefix": f"{jurisdiction}{number}",
    }


def _now():
    from datetime import datetime

    return datetime.now(UTC)
