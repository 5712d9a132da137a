"""The audit trail over HTTP: every write (POST, PUT, PATCH, DELETE) is recorded before its answer leaves, whatever
its outcome; admins read the trail at GET /v1/audit."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Query

from tcr_registry.adapters.persistence.audit_log import AuditEntry, AuditLog, AuditQuery
from tcr_shared.platform import page_tokens
from tcr_shared.platform.auth import Principal

log = logging.getLogger("tcr.registry.audit")
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# Route function -> the action's name in the trail (routes not listed keep their function's name).
ACTIONS = {
    "submit": "contract.submit",
    "certify": "contract.certify",
    "reject": "contract.reject",
    "withdraw": "contract.withdraw",
    "amend": "contract.amend",
    "revoke": "contract.revoke",
    "create_point": "point.create",
    "create_key": "api_key.issue",
    "revoke_key": "api_key.revoke",
    "erase_individual": "individual.erase",
    "create": "webhook.subscribe",
    "patch_subscription": "webhook.change",
    "delete_subscription": "webhook.delete",
}
TARGETS = ("contract_id", "key_id", "sub_id", "id_number")


class AuditMiddleware:
    """Pure ASGI (streaming answers pass untouched). `redact` turns a path parameter into what the trail may keep
    (an identity number becomes its subject)."""

    def __init__(self, app, audit: Callable[[], AuditLog], redact: Callable[[str, str], str]) -> None:
        self.app = app
        self._audit = audit
        self._redact = redact

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] not in WRITES:
            await self.app(scope, receive, send)
            return
        answered = False

        async def audited_send(message) -> None:
            nonlocal answered
            if message["type"] == "http.response.start" and not answered:
                answered = True
                await self._record(scope, message["status"])
            await send(message)

        try:
            await self.app(scope, receive, audited_send)
        except Exception:
            if not answered:
                await self._record(scope, 500)
            raise

    async def _record(self, scope, status: int) -> None:
        try:
            await self._audit().record(self._entry(scope, status))
        except Exception:  # the act happened (or not) regardless: the failure to record it is logged loudly
            log.exception("could not record an audit entry for %s %s", scope["method"], scope.get("path"))

    def _entry(self, scope, status: int) -> AuditEntry:
        principal: Principal | None = (scope.get("state") or {}).get("principal")
        route = scope.get("route")
        endpoint = scope.get("endpoint")
        name = getattr(endpoint, "__name__", None) if route is not None else None
        params = scope.get("path_params") or {}
        target = next(((k, str(params[k])) for k in TARGETS if k in params), None)
        client = scope.get("client")
        return AuditEntry(
            at=datetime.now(UTC),
            key_id=principal.key_id if principal else None,
            role=principal.role if principal else None,
            point_id=principal.point_id if principal else None,
            action=ACTIONS.get(name, name or "unrouted"),
            target=self._redact(*target)[:200] if target else None,
            method=scope["method"],
            # The route's template, not the path: a path may carry an identity number.
            path=(getattr(route, "path", None) or "(no route)")[:500],
            address=client[0] if client else None,
            outcome=status,
        )


def audit_router(runtime) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["administration"])
    admin = runtime.require("admin")

    @router.get("/audit", summary="The audit trail: every write and administrative act, oldest first (admins)")
    async def read_audit(
        _: Principal = Depends(admin),
        since: datetime | None = Query(None, alias="from", description="From this time on (ISO 8601)"),
        until: datetime | None = Query(None, alias="to", description="Before this time (ISO 8601)"),
        key_id: str | None = Query(None, max_length=64),
        action: str | None = Query(None, max_length=64, description="e.g. contract.certify, api_key.revoke"),
        limit: int = Query(100, ge=1, le=1000),
        page_token: str | None = None,
    ) -> dict[str, Any]:
        after = page_tokens.decode_position(page_token, "a") if page_token else None
        query = AuditQuery(_utc(since), _utc(until), key_id, action)
        rows = await runtime.audit.page(query, after, limit)
        return {
            "entries": [_view(row) for row in rows],
            "next_page_token": page_tokens.encode("a", rows[-1]["id"]) if len(rows) == limit else None,
        }

    return router


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _view(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "at": _utc(row["at"]).isoformat()}
