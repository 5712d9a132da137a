"""A database outage answers 503 with Retry-After (never 500, never a hang), /readyz fails while the database is
down and recovers by itself. A throwaway PostgreSQL cluster that this module starts and stops (pg_ctl -m fast and
-m immediate), served through a tiny FastAPI app built from the shared platform pieces the services use."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from fastapi import FastAPI
from sqlalchemy import text

from tcr_shared.platform.database import Database, database_ready
from tcr_shared.platform.observability import instrument
from tcr_shared.platform.outages import is_outage
from tcr_shared.platform.problems import PROBLEM_JSON, install_problem_handlers
from tests.support import servers

# The bound a request must answer within while PostgreSQL is down (the client gives up after it: the test fails);
# an eventsourcing write takes about 12 s to give up (10 tries of a 1 s pool wait).
ANSWER_BOUND = 15.0


class Note(Aggregate):
    @event("Written")
    def __init__(self, body: str) -> None:
        self.body = body


class Notes(Application):
    pass


@pytest.fixture(scope="module")
def cluster():
    if servers.postgres_bin_dir() is None:
        servers.unavailable("no PostgreSQL binaries to start a throwaway cluster")  # the test extra has pgserver
    cluster = servers.PostgresCluster.create().start()
    yield cluster
    cluster.destroy()


@pytest.fixture(scope="module")
def database(cluster) -> Database:
    import psycopg

    with psycopg.connect(cluster.admin_dsn, autocommit=True) as conn:
        conn.execute("CREATE DATABASE outage")
    return Database(cluster.url("outage"))


def tiny_app(database: Database) -> FastAPI:
    """The shape of a service: problem handlers, /readyz from database_ready, a SQLAlchemy read and an
    eventsourcing write."""
    app = FastAPI()
    engine = database.async_engine()
    notes = Notes(env=database.eventsourcing_env() | {"CREATE_TABLE": "true"})
    install_problem_handlers(app)
    instrument(app, f"outage-{uuid.uuid4().hex[:6]}", ready=database_ready(engine))

    @app.get("/rows")
    async def rows() -> dict:
        async with engine.connect() as connection:
            return {"one": (await connection.execute(text("SELECT 1"))).scalar_one()}

    @app.post("/notes")
    async def write() -> dict:
        note = Note("hello")
        await asyncio.to_thread(notes.save, note)
        return {"id": str(note.id)}

    @app.get("/broken")
    async def broken() -> dict:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT * FROM no_such_table"))
        return {}

    return app


@pytest.fixture
async def client(database):
    transport = httpx.ASGITransport(app=tiny_app(database))  # app exceptions that escape the handlers fail the test
    async with httpx.AsyncClient(transport=transport, base_url="http://tiny", timeout=ANSWER_BOUND) as client:
        yield client


async def wait_until(predicate, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.2)


def assert_outage(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert int(response.headers["retry-after"]) > 0
    assert response.json()["status"] == 503


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_an_outage_answers_503_and_recovers(cluster, client, mode) -> None:
    assert (await client.get("/rows")).json() == {"one": 1}
    assert (await client.post("/notes")).status_code == 200
    assert (await client.get("/readyz")).status_code == 200

    cluster.stop(mode)
    try:
        # pooled connections are dead and new ones are refused: both paths answer 503, never 500, within the bound
        for _ in range(2):
            assert_outage(await client.get("/rows"))
            assert_outage(await client.post("/notes"))
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["ready"] is False
        assert (await client.get("/healthz")).status_code == 200  # liveness is not readiness
    finally:
        cluster.start()

    async def recovered() -> bool:
        return (await client.get("/readyz")).status_code == 200 and (await client.get("/rows")).status_code == 200

    await wait_until(recovered, "the app did not recover after PostgreSQL came back")

    async def writes_again() -> bool:
        return (await client.post("/notes")).status_code == 200

    await wait_until(writes_again, "eventsourcing writes did not recover")


async def test_a_database_error_that_is_no_outage_stays_500(client) -> None:
    response = await client.get("/broken")
    assert response.status_code == 500
    assert "retry-after" not in response.headers


def test_is_outage_follows_the_cause_chain() -> None:
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except ConnectionRefusedError as exc:
            raise RuntimeError("store failed") from exc
    except RuntimeError as wrapped:
        assert is_outage(wrapped)
    assert not is_outage(ValueError("bad amount"))
    assert not is_outage(FileNotFoundError("rules.yaml"))
