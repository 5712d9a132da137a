"""The reporting service's audit trail (issue 11): its writes (what-if runs, passed on to the subsidy service;
dashboard sign-ins, refused ones included) land in its own append-only table with who, what, when, from where and
the outcome; admins read it at GET /v1/audit. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tcr_reporting.adapters.http.dashboard import COOKIE
from tcr_reporting.adapters.persistence.migrate import upgrade
from tcr_shared.platform.auth import ADMIN_KEY_ID
from tcr_shared.platform.database import Database
from tests.reporting.test_metrics_route import ADMIN, make_app
from tests.support.audit import assert_append_only, trail

ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN}"}
CANDIDATE = {"rules": {"id": "candidate"}, "from_year": 2024, "to_year": 2025}


@pytest.fixture
async def client(database_url, tmp_path, monkeypatch):
    await asyncio.to_thread(upgrade, Database(database_url))
    app = make_app(database_url, tmp_path, monkeypatch, query_cache=True)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        yield client
    await app.state.runtime.engine.dispose()


async def test_what_if_runs_and_sign_ins_are_recorded_and_admins_read_them(client, database_url):
    started = datetime.now(UTC) - timedelta(seconds=1)
    # the subsidy service is not reachable here: the run is recorded with the answer the caller got
    by_key = await client.post("/v1/what-if", json=CANDIDATE, headers={"Authorization": "Bearer analyst-key"})
    assert by_key.status_code == 503, by_key.text
    refused = await client.post("/login", data={"key": "unknown", "next": "/"})
    assert refused.headers["location"].startswith("/login?failed=1")
    signed = await client.post("/login", data={"key": ADMIN, "next": "/"})
    assert signed.status_code == 303 and client.cookies.get(COOKIE) == ADMIN
    by_cookie = await client.post("/v1/what-if", json=CANDIDATE)
    assert by_cookie.status_code == by_key.status_code
    client.cookies.clear()
    anonymous = await client.post("/v1/what-if", json=CANDIDATE)
    assert anonymous.status_code == 401
    await client.get("/dashboard/version", headers=ADMIN_HEADERS)  # reads are not acts

    since = {"from": started.isoformat()}
    entries = await trail(client, ADMIN_HEADERS, **since)
    assert [(e["action"], e["key_id"], e["role"], e["outcome"]) for e in entries] == [
        ("what_if.run", "analyst-key", "analyst", by_key.status_code),
        ("dashboard.sign_in", None, None, 303),
        ("dashboard.sign_in", ADMIN_KEY_ID, "admin", 303),
        ("what_if.run", ADMIN_KEY_ID, "admin", by_key.status_code),
        ("what_if.run", None, None, 401),
    ]
    for entry in entries:
        assert entry["method"] == "POST" and entry["address"] == "127.0.0.1"
        assert datetime.fromisoformat(entry["at"]) >= started
    assert [e["path"] for e in entries[:2]] == ["/v1/what-if", "/login"]
    assert len(await trail(client, ADMIN_HEADERS, action="dashboard.sign_in", **since)) == 2
    assert [e["action"] for e in await trail(client, ADMIN_HEADERS, key_id="analyst-key", **since)] == ["what_if.run"]
    assert await trail(client, ADMIN_HEADERS, to=started.isoformat()) == []

    assert (await client.get("/v1/audit", headers={"Authorization": "Bearer analyst-key"})).status_code == 403
    assert (await client.get("/v1/audit", headers={"Authorization": "Bearer point-key"})).status_code == 403
    far = await client.get("/v1/audit", params={"from": "0001-01-01T00:00:00+14:00"}, headers=ADMIN_HEADERS)
    assert far.status_code == 422 and far.headers["content-type"] == "application/problem+json"
    assert_append_only(Database(database_url).sync_url)
