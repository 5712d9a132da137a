"""A small publisher for the partner tests: an event log in SQLite served by the shared feed router, with the
shared webhook router and delivery worker mounted exactly as a service mounts them.

`uvicorn tests.partners.publisher_app:create_app --factory`, configured by the environment:
TCR_TEST_PUBLISHER_DB (SQLite file) or TCR_TEST_PUBLISHER_DATABASE_URL, TCR_TEST_PUBLISHER_SOURCE (registry | subsidy), TCR_ADMIN_KEY, TCR_WEBHOOK_*.
Keys: the admin key, `partner-<name>` (role partner, key id <name>), `analyst-<name>`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from datetime import UTC, datetime

from fastapi import Depends, FastAPI
from sqlalchemy import JSON, Column, Integer, MetaData, String, Table, func, select

from tcr_shared.feeds.server import NewEventsSignal, feed_router
from tcr_shared.language.events.envelope import FeedEvent, FeedPage
from tcr_shared.language.events.registry import REGISTRY_EVENT_TYPES
from tcr_shared.language.events.subsidy import SUBSIDY_EVENT_TYPES
from tcr_shared.partners.webhooks import DeliveryWorker, WebhookSettings, subscriptions_router, webhook_tables
from tcr_shared.platform.auth import Authenticator, Principal
from tcr_shared.platform.database import Database
from tcr_shared.platform.observability import instrument
from tcr_shared.platform.problems import install_problem_handlers, install_problem_openapi

metadata = MetaData()
events_table = Table(
    "events",
    metadata,
    Column("position", Integer, primary_key=True, autoincrement=True),
    Column("id", String(40), nullable=False),
    Column("type", String(100), nullable=False),
    Column("time", String(40), nullable=False),
    Column("subject", String(100), nullable=False),
    Column("data", JSON, nullable=False),
)
webhooks = webhook_tables(metadata)


class SqlEventLog:
    def __init__(self, engine, source: str) -> None:
        self.engine = engine
        self.source = f"/tcr/{source}"

    async def read(self, after: int, limit: int) -> FeedPage:
        async with self.engine.connect() as conn:
            rows = (
                (
                    await conn.execute(
                        select(events_table)
                        .where(events_table.c.position > after)
                        .order_by(events_table.c.position)
                        .limit(limit)
                    )
                )
                .mappings()
                .all()
            )
            head = await conn.scalar(select(func.max(events_table.c.position))) or 0
        events = [
            FeedEvent(
                id=r["id"],
                source=self.source,
                type=r["type"],
                time=r["time"],
                subject=r["subject"],
                position=r["position"],
                data=r["data"],
            )
            for r in rows
        ]
        return FeedPage(events=events, next_after=events[-1].position if events else after, head=head)

    async def head(self) -> int:
        async with self.engine.connect() as conn:
            return await conn.scalar(select(func.max(events_table.c.position))) or 0

    async def append(self, items: list[dict]) -> list[int]:
        now = datetime.now(UTC).isoformat()
        positions = []
        async with self.engine.begin() as conn:
            for item in items:
                result = await conn.execute(
                    events_table.insert().values(
                        id=str(uuid.uuid4()), type=item["type"], time=now, subject=item["subject"], data=item["data"]
                    )
                )
                positions.append(result.inserted_primary_key[0])
        return positions


REVOKED: set[str] = set()  # key ids revoked through POST /test/keys/{name}/revoke (the registry's job in a service)


async def resolve(secret: str) -> Principal | None:
    role, _, name = secret.partition("-")
    if role in ("partner", "analyst") and name and name not in REVOKED:
        return Principal(key_id=name, role=role)
    return None


async def key_active(key_id: str) -> bool:
    return key_id not in REVOKED


def create_app() -> FastAPI:
    source = os.environ.get("TCR_TEST_PUBLISHER_SOURCE", "registry")
    database = Database(
        os.environ.get("TCR_TEST_PUBLISHER_DATABASE_URL") or f"sqlite:///{os.environ['TCR_TEST_PUBLISHER_DB']}"
    )
    engine = database.async_engine()
    require = Authenticator(os.environ.get("TCR_ADMIN_KEY"), resolve).require
    log = SqlEventLog(engine, source)
    signal = NewEventsSignal()
    types = REGISTRY_EVENT_TYPES if source == "registry" else SUBSIDY_EVENT_TYPES

    # --- the lines a service adds to mount webhooks ---
    worker = DeliveryWorker(engine, webhooks, log, signal=signal, settings=WebhookSettings(), key_active=key_active)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        signal.bind(asyncio.get_running_loop())
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        worker.start()
        try:
            yield
        finally:
            await worker.stop()
            await engine.dispose()

    app = FastAPI(lifespan=lifespan)
    install_problem_handlers(app)
    install_problem_openapi(app)
    metrics = instrument(app, f"test-{source}")
    worker.register_metrics(metrics.registry)
    app.include_router(feed_router(log, signal, require("partner", "analyst")))
    app.include_router(
        subscriptions_router(
            engine=engine, tables=webhooks, source=log, event_types=types, require=require, worker=worker
        )
    )

    @app.post("/test/events", status_code=201, include_in_schema=False)  # test controls: not the API under test
    async def append(items: list[dict], _admin=Depends(require("admin"))) -> dict:
        positions = await log.append(items)
        signal.ring()
        return {"positions": positions}

    @app.post("/test/keys/{name}/revoke", include_in_schema=False)
    async def revoke(name: str, tell: bool = False, _admin=Depends(require("admin"))) -> dict:
        """Revoke a key; `tell=1` also tells the worker at once (as the registry can), else the worker finds out
        before its next delivery (as the subsidy service does, through the registry)."""
        REVOKED.add(name)
        return {"paused": await worker.pause_owner(name) if tell else []}

    @app.post("/test/keys/{name}/restore", include_in_schema=False)
    async def restore(name: str, _admin=Depends(require("admin"))) -> dict:
        REVOKED.discard(name)
        return {}

    @app.get("/test/worker", include_in_schema=False)
    async def worker_status() -> dict:
        return {"delivered": worker.delivered, "failed": worker.failed}

    return app
