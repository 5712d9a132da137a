"""The dashboard signs in with the API's one `Authenticator`: the same keys and roles pass (analyst, admin, the
bootstrap admin key without asking the registry), everything else is sent back to the sign-in form."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tcr_reporting.adapters.http.dashboard import COOKIE
from tcr_reporting.adapters.persistence.migrate import upgrade
from tcr_shared.platform.database import Database
from tests.reporting.test_metrics_route import ADMIN, make_app


@pytest.fixture
async def client(database_url, tmp_path, monkeypatch):
    await asyncio.to_thread(upgrade, Database(database_url))
    app = make_app(database_url, tmp_path, monkeypatch, query_cache=True)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        yield client
    await app.state.runtime.engine.dispose()


async def sign_in(client: httpx.AsyncClient, key: str) -> httpx.Response:
    client.cookies.clear()
    return await client.post("/login", data={"key": key, "next": "/counties/640104"})


async def test_readers_sign_in_and_others_are_sent_back(client) -> None:
    resolver = client._transport.app.state.runtime.resolver
    for key in (ADMIN, "analyst-key"):
        response = await sign_in(client, key)
        assert response.status_code == 303 and response.headers["location"] == "/counties/640104", key
        assert client.cookies.get(COOKIE) == key
        version = await client.get("/dashboard/version")
        assert version.status_code == 200 and "version" in version.json()
    assert resolver.asked == 2  # the analyst key, at sign-in and for the version; never the bootstrap key
    for key in ("point-key", "unknown", "registry-down", "ключ"):
        response = await sign_in(client, key)
        assert response.status_code == 303, key
        assert response.headers["location"].startswith("/login?failed=1"), key
        assert COOKIE not in client.cookies


async def test_a_cookie_of_another_role_is_not_a_reader(client) -> None:
    client.cookies.set(COOKIE, "point-key")
    response = await client.get("/dashboard/version")
    assert response.status_code == 401 and response.headers["content-type"] == "application/problem+json"
    page = await client.get("/")
    assert page.status_code == 303 and page.headers["location"].startswith("/login")
