"""The audit trail, one home for every service: every write and administrative act (POST, PUT, PATCH, DELETE;
whatever its outcome, refusals and unauthenticated attempts included) lands in the service's own append-only
`audit_log` table: who (key id, role, point), what (action, target), when, from which address, and the outcome
(the HTTP status answered). Admins read it at `GET /v1/audit?from=&to=&key_id=&action=`.

A service adopts it with four pieces:

    audit_log = audit_table(metadata)                          # persistence/tables.py (SQLAlchemy Core)
    create_audit_table(op) / drop_audit_table(op)              # its alembic migration (table, indexes, triggers)
    audit = AuditLog(engine, audit_log)                        # the runtime
    app.add_middleware(AuditMiddleware, audit=lambda: audit, actions={...})
    app.include_router(audit_router(lambda: audit, require))  # GET /v1/audit

The table is append-only: triggers refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL), so not even the service's
own database user rewrites history through SQL. Entries are written before the answer leaves (no acknowledged act
without its entry) and together: requests that finish at the same moment share one transaction (group commit),
so the trail costs the writes one short wait, not one fsync each. A write that stores its own entry in its own
transaction (the registry's writer: `audit_entry`, then `mark_recorded`) spares the request that second commit;
the middleware then records nothing more for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy import BigInteger, Column, DateTime, Index, Integer, MetaData, String, Table, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tcr_shared.platform import page_tokens
from tcr_shared.platform.auth import Principal
from tcr_shared.platform.problems import Problem, field_error

log = logging.getLogger("tcr.audit")
AUDIT_TABLE = "audit_log"
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
TARGETS = ("contract_id", "key_id", "sub_id", "simulation_id", "id_number")  # path parameters naming the target

# The shared webhook routes (tcr_shared.partners.webhooks.router), by route function, in every service serving them.
WEBHOOK_ACTIONS = {
    "create": "webhook.subscribe",
    "patch_subscription": "webhook.change",
    "delete_subscription": "webhook.delete",
    "replay": "webhook.replay",
}


# --- the table -----------------------------------------------------------------------------------------------------
def _columns() -> list:
    return [
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("at", DateTime(timezone=True), nullable=False),
        Column("key_id", String(64), nullable=True),
        Column("role", String(16), nullable=True),
        Column("point_id", String(36), nullable=True),
        Column("action", String(64), nullable=False),
        Column("target", String(200), nullable=True),
        Column("method", String(8), nullable=False),
        Column("path", String(500), nullable=False),
        Column("address", String(64), nullable=True),
        Column("outcome", Integer, nullable=False),
    ]


def _indexes(name: str) -> list[tuple[str, list[str]]]:
    return [(f"ix_{name}_at", ["at"]), (f"ix_{name}_key_id", ["key_id", "id"]), (f"ix_{name}_action", ["action", "id"])]


def audit_table(metadata: MetaData, name: str = AUDIT_TABLE) -> Table:
    """The trail's table in a service's metadata (the migration made by `create_audit_table` creates it)."""
    if name in metadata.tables:
        return metadata.tables[name]
    return Table(name, metadata, *_columns(), *(Index(ix, *cols) for ix, cols in _indexes(name)))


def _append_only_postgres(name: str) -> str:
    return f"""
CREATE OR REPLACE FUNCTION {name}_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '{name} is append-only';
END;
$$;
CREATE TRIGGER {name}_no_update BEFORE UPDATE OR DELETE ON {name}
    FOR EACH ROW EXECUTE FUNCTION {name}_append_only();
CREATE TRIGGER {name}_no_truncate BEFORE TRUNCATE ON {name}
    FOR EACH STATEMENT EXECUTE FUNCTION {name}_append_only();
"""


def _append_only_sqlite(name: str) -> list[str]:
    return [
        f"CREATE TRIGGER {name}_no_update BEFORE UPDATE ON {name} BEGIN SELECT RAISE(ABORT, '{name} is append-only'); END",
        f"CREATE TRIGGER {name}_no_delete BEFORE DELETE ON {name} BEGIN SELECT RAISE(ABORT, '{name} is append-only'); END",
    ]


def create_audit_table(op, name: str = AUDIT_TABLE) -> None:
    """For a service's alembic migration: the table, its indexes and the triggers that refuse rewriting it."""
    op.create_table(name, *_columns())
    for index, columns in _indexes(name):
        op.create_index(index, name, columns)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_append_only_postgres(name))
    else:
        for statement in _append_only_sqlite(name):
            op.execute(statement)


def drop_audit_table(op, name: str = AUDIT_TABLE) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {name}_no_truncate ON {name}")
        op.execute(f"DROP TRIGGER IF EXISTS {name}_no_update ON {name}")
        op.execute(f"DROP FUNCTION IF EXISTS {name}_append_only()")
    op.drop_table(name)


# --- writing and reading it ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    key_id: str | None
    role: str | None
    point_id: str | None
    action: str
    target: str | None
    method: str
    path: str
    address: str | None
    outcome: int


@dataclass(frozen=True)
class AuditQuery:
    since: datetime | None = None
    until: datetime | None = None
    key_id: str | None = None
    action: str | None = None


class AuditLog:
    def __init__(self, engine: AsyncEngine, table: Table) -> None:
        self._engine = engine
        self._table = table
        self._pending: list[tuple[AuditEntry, asyncio.Future]] = []
        self._flusher: asyncio.Task | None = None

    async def record(self, entry: AuditEntry) -> None:
        """Returns once the entry is committed (with whatever else was waiting)."""
        done = asyncio.get_running_loop().create_future()
        self._pending.append((entry, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="audit-flush")
        await done

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                async with self._engine.begin() as conn:
                    await conn.execute(insert(self._table), [asdict(entry) for entry, _ in batch])
            except Exception as exc:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
            else:
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)

    async def page(self, query: AuditQuery, after: int | None, limit: int) -> list[dict]:
        t = self._table
        statement = select(t).order_by(t.c.id).limit(limit)
        if after is not None:
            statement = statement.where(t.c.id > after)
        if query.since is not None:
            statement = statement.where(t.c.at >= query.since)
        if query.until is not None:
            statement = statement.where(t.c.at < query.until)
        if query.key_id is not None:
            statement = statement.where(t.c.key_id == query.key_id)
        if query.action is not None:
            statement = statement.where(t.c.action == query.action)
        async with self._engine.connect() as conn:
            return [dict(row) for row in (await conn.execute(statement)).mappings().all()]


# --- over HTTP -----------------------------------------------------------------------------------------------------
def _kept_as_is(_name: str, value: str) -> str:
    return value


class AuditMiddleware:
    """Pure ASGI (streaming answers pass untouched). `actions` names a route function's act in the trail (a route
    not listed keeps its function's name); `redact` turns a path parameter into what the trail may keep (the
    registry keeps an identity number's subject, never the number)."""

    def __init__(
        self,
        app,
        audit: Callable[[], AuditLog],
        actions: Mapping[str, str],
        redact: Callable[[str, str], str] = _kept_as_is,
    ) -> None:
        self.app = app
        self._audit = audit
        self._actions = actions
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
                if not (scope.get("state") or {}).get(RECORDED):
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
        return audit_entry(scope, status, self._actions, self._redact)


RECORDED = "audit_recorded"  # in the request's state: its entry is stored already (with the write itself)


def mark_recorded(scope) -> None:
    """The request's entry was stored in its write's own transaction: the middleware records nothing more."""
    scope.setdefault("state", {})[RECORDED] = True


def audit_entry(
    scope, status: int, actions: Mapping[str, str], redact: Callable[[str, str], str] = _kept_as_is
) -> AuditEntry:
    """The trail's entry for the request in `scope` ended with `status` (what AuditMiddleware records)."""
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
        action=actions.get(name, name or "unrouted"),
        target=redact(*target)[:200] if target else None,
        method=scope["method"],
        # The route's template, not the path: a path may carry an identity number.
        path=(getattr(route, "path", None) or "(no route)")[:500],
        address=client[0][:64] if client else None,
        outcome=status,
    )


def audit_router(audit: Callable[[], AuditLog], require: Callable[..., Any]) -> APIRouter:
    """GET /v1/audit for admins (`require` is the service's `Authenticator.require`)."""
    router = APIRouter(prefix="/v1", tags=["administration"])
    admin = require("admin")

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
        query = AuditQuery(_bound(since, "from"), _bound(until, "to"), key_id, action)
        rows = await audit().page(query, after, limit)
        return {
            "entries": [_view(row) for row in rows],
            "next_page_token": page_tokens.encode("a", rows[-1]["id"]) if len(rows) == limit else None,
        }

    return router


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _bound(moment: datetime | None, field: str) -> datetime | None:
    try:
        return _utc(moment)
    except OverflowError:  # 0001-01-01T00:00:00+14:00 has no UTC time
        message = "is outside the times that can be expressed in UTC"
        raise Problem(422, f"{field} {message}.", errors=[field_error(field, message)]) from None


def _view(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "at": _utc(row["at"]).isoformat()}


__all__ = [
    "AUDIT_TABLE",
    "WEBHOOK_ACTIONS",
    "AuditEntry",
    "AuditLog",
    "AuditMiddleware",
    "AuditQuery",
    "audit_entry",
    "audit_router",
    "audit_table",
    "create_audit_table",
    "drop_audit_table",
    "mark_recorded",
]
