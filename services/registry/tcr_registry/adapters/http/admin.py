"""Administration: registration points and API keys; and /v1/whoami, which the other services use to
learn who a key belongs to."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse, Response

from tcr_registry.adapters.http import schemas
from tcr_registry.adapters.http.idempotency import IdempotentRequest, crash_after_commit, replay_sealed
from tcr_registry.application.errors import PointNumberTaken
from tcr_registry.application.ports import RegistrationPoint
from tcr_shared.language.regions import ningxia_regions
from tcr_shared.platform.auth import Principal
from tcr_shared.platform.problems import Problem

audit = logging.getLogger("tcr.registry.audit")
KEY_ID = Path(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="The key's id (not its secret)")


def _receipt(idempotent: IdempotentRequest | None, status: int, answer, headers=None):
    """Stores the admin write's receipt (its answer, sealed) inside the write's own transaction."""
    if idempotent is None:
        return None

    async def record(conn, result) -> None:
        await idempotent.record_answer(conn, status, answer(result), headers(result) if headers else {})

    return record


async def _replay(earlier) -> Response:
    return replay_sealed(earlier)


def admin_router(runtime) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["administration"])
    admin = runtime.require("admin")
    anyone = runtime.require("point", "partner", "analyst")

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
    async def create_point(body: schemas.PointIn, request: Request, principal: Principal = Depends(admin)):
        async def handle(idempotent: IdempotentRequest | None) -> Response:
            try:
                point = await runtime.points_and_keys.create_point(
                    body.number,
                    body.name,
                    body.jurisdiction,
                    created_by=principal.key_id,
                    receipt=_receipt(idempotent, 201, _point_view, _point_location),
                )
            except PointNumberTaken as taken:
                raise Problem(
                    409,
                    f"Point number {taken.number} already exists in jurisdiction {taken.jurisdiction}.",
                    title="Conflict",
                ) from None
            crash_after_commit(runtime.settings.fault_after_commit, "create_point")
            audit.info("point created", extra={"service": "registry"})
            return JSONResponse(_point_view(point), status_code=201, headers=_point_location(point))

        return await runtime.idempotency.run(request, principal, handle, _replay)

    @router.get("/points", summary="All registration points")
    async def list_points(_: Principal = Depends(anyone)):
        return {"points": [_point_view(p) for p in await runtime.points_and_keys.list_points()]}

    @router.post("/api-keys", status_code=201, summary="Issue an API key; the secret is shown only once")
    async def create_key(body: schemas.ApiKeyIn, request: Request, principal: Principal = Depends(admin)):
        if body.role == "point":
            if not body.point_id:
                raise Problem(
                    422,
                    "A key of role 'point' needs the point_id it acts for.",
                    errors=[{"field": "point_id", "message": "required for role point"}],
                )
            if not await runtime.points_and_keys.point_exists(body.point_id):
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

        def issued(key) -> dict:
            return {
                "id": key.id,
                "role": body.role,
                "point_id": body.point_id,
                "label": body.label,
                "secret": key.secret,
                "note": "Store the secret now: only its SHA-256 is kept, it cannot be shown again.",
            }

        async def handle(idempotent: IdempotentRequest | None) -> Response:
            key = await runtime.points_and_keys.issue_key(
                body.role,
                body.point_id,
                body.label,
                created_by=principal.key_id,
                receipt=_receipt(idempotent, 201, issued),
            )
            crash_after_commit(runtime.settings.fault_after_commit, "issue_key")
            audit.info("api key issued", extra={"service": "registry"})
            return JSONResponse(issued(key), status_code=201)

        return await runtime.idempotency.run(request, principal, handle, _replay)

    @router.get("/api-keys/{key_id}", summary="An API key's role and whether it is revoked (no secret)")
    async def key_status(key_id: str = KEY_ID, _: Principal = Depends(admin)):
        described = await runtime.key_status.describe(key_id)
        if described is None:
            raise Problem(404, f"There is no API key {key_id}.")
        return described

    @router.delete("/api-keys/{key_id}", status_code=204, summary="Revoke an API key; its webhooks pause")
    async def revoke_key(request: Request, key_id: str = KEY_ID, principal: Principal = Depends(admin)):
        async def handle(idempotent: IdempotentRequest | None) -> Response:
            receipt = _receipt(idempotent, 204, lambda _key_id: None)
            if not await runtime.points_and_keys.revoke_key(key_id, receipt=receipt):
                raise Problem(404, f"There is no active API key {key_id}.")
            crash_after_commit(runtime.settings.fault_after_commit, "revoke_key")
            await runtime.webhooks.pause_owner(key_id)  # at once (after a crash here, the worker's key_active does it)
            return Response(status_code=204)

        return await runtime.idempotency.run(request, principal, handle, _replay)

    @router.delete(
        "/individuals/{id_number}",
        status_code=204,
        summary="Erase an individual's personal data (PIPL art. 47): their key is destroyed (admins)",
    )
    async def erase_individual(id_number: str, principal: Principal = Depends(admin)):
        outcome = await runtime.erase_individual(id_number, by=principal.key_id)
        if outcome is None:
            raise Problem(404, "No personal data of this identity number is held.")
        return Response(status_code=204, headers={"TCR-Erasure": outcome})

    @router.get("/regions", summary="Ningxia's GB/T 2260 codes with Chinese and English names")
    async def regions():
        return {
            "regions": [
                {"code": r.code, "name": r.name, "level": r.level, "parent": r.parent}
                for r in ningxia_regions().values()
            ]
        }

    return router


def _point_location(point: RegistrationPoint) -> dict[str, str]:
    return {"Location": f"/v1/points/{point.id}"}


def _point_view(point: RegistrationPoint) -> dict:
    return {
        "id": point.id,
        "number": point.number,
        "name": point.name,
        "jurisdiction": point.jurisdiction,
        "registration_prefix": point.registration_prefix,
    }
