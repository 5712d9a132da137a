"""The hottest read, GET /v1/regions/{code}/metrics, through the FastAPI route: every status it can answer, errors
as problem+json, the key resolver asked once per key, the route label in the request metrics, and an answer that
follows the projection version.

Two apps on one database, one answering from the per-version cache (the default) and one without it, are asked
the same requests in-process; status, headers and bodies must be identical.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
import pytest

from tcr_reporting.adapters.persistence.migrate import upgrade
from tcr_reporting.adapters.persistence.projection import registry_sink
from tcr_reporting.adapters.persistence.tables import FEED_REGISTRY
from tcr_reporting.bootstrap import create_app
from tcr_reporting.settings import ReportingSettings
from tcr_shared.platform import auth
from tcr_shared.platform.auth import Principal
from tcr_shared.platform.database import Database
from tcr_shared.platform.problems import Problem
from tests.reporting.builders import Feed, terms

ADMIN = "cached-admin-key"
KEYS = {"analyst-key": "analyst", "point-key": "point"}
NOW = datetime(2026, 3, 1, tzinfo=UTC)


class StubResolver:
    """Stands in for RegistryKeyResolver (the registry's /v1/whoami), counting the questions."""

    def __init__(self) -> None:
        self.asked = 0

    async def __call__(self, secret: str) -> Principal | None:
        self.asked += 1
        if secret == "registry-down":
            raise Problem(503, "The registry, which vouches for API keys, cannot be reached; try again shortly.")
        role = KEYS.get(secret)
        return Principal(key_id=secret, role=role) if role else None

    async def aclose(self) -> None:
        pass


def make_app(database_url: str, tmp_path, monkeypatch, *, query_cache: bool):
    monkeypatch.setattr(auth, "RegistryKeyResolver", lambda url: StubResolver())
    settings = ReportingSettings(
        reporting_database_url=database_url,
        data_dir=tmp_path,
        admin_key=ADMIN,
        registry_url="http://127.0.0.1:9",
        subsidy_url="http://127.0.0.1:9",
        query_cache=query_cache,
    )
    app = create_app(settings)
    app.state.runtime.clock = lambda: NOW
    return app


@pytest.fixture
async def apps(database_url, tmp_path, monkeypatch):
    await asyncio.to_thread(upgrade, Database(database_url))
    cached = make_app(database_url, tmp_path, monkeypatch, query_cache=True)
    uncached = make_app(database_url, tmp_path, monkeypatch, query_cache=False)
    apps = (cached, uncached)
    clients = [httpx.AsyncClient(transport=httpx.ASGITransport(app=a), base_url="http://test") for a in apps]
    yield cached, uncached, clients[0], clients[1]
    for client in clients:
        await client.aclose()
    for app in apps:
        await app.state.runtime.engine.dispose()


async def apply_page(app, feed: Feed, *also) -> None:
    """What a follower does: apply the page with its position, then move the status (the version); `also`:
    other apps on the same database, whose followers would just move their position."""
    await registry_sink(app.state.runtime.engine).apply(feed.events, feed.position)
    for each in (app, *also):
        each.state.runtime.feeds[FEED_REGISTRY].follower.status.position = feed.position


def comparable(response: httpx.Response) -> tuple:
    return response.status_code, response.headers.multi_items(), response.content


async def test_every_answer_of_the_route_with_and_without_the_cache(apps) -> None:
    cached, uncached, cached_client, uncached_client = apps
    feed = Feed()
    feed.certify("k1", terms("640104", "640181", "1234.56", "1000.01", "licence"), 2025)
    feed.certify("k2", terms("640302", "640302", "200.00", "150.00", "service"), 2026)
    await apply_page(cached, feed, uncached)
    admin = {"Authorization": f"Bearer {ADMIN}"}
    analyst = {"Authorization": "Bearer analyst-key"}
    cases = [
        ("/v1/regions/640104/metrics?year=2025", admin, 200),
        ("/v1/regions/640100/metrics?year=2025", analyst, 200),
        ("/v1/regions/640000/metrics", admin, 200),  # default: this policy year
        ("/v1/regions/640302/metrics?year=2026", {**analyst, "Accept": "application/json, text/*;q=0.5"}, 200),
        ("/v1/regions/640181/metrics?year=2025", {**admin, "Accept": "*/*"}, 200),
        ("/v1/regions/640104/metrics?year=2025&extra=1", admin, 200),
        ("/v1/regions/640104/metrics?year=02025", admin, 200),
        # errors, as problem+json
        ("/v1/regions/640104/metrics?year=2025", {}, 401),
        ("/v1/regions/640104/metrics?year=2025", {"Authorization": "Bearer unknown"}, 401),
        ("/v1/regions/640104/metrics?year=2025", {"Authorization": "Basic abc"}, 401),
        ("/v1/regions/640104/metrics?year=2025", {"Authorization": "Bearer point-key"}, 403),
        ("/v1/regions/640104/metrics?year=2025", {"Authorization": "Bearer registry-down"}, 503),
        ("/v1/regions/999999/metrics?year=2025", admin, 404),
        ("/v1/regions/640104/metrics?year=1999", admin, 422),
        ("/v1/regions/640104/metrics?year=2027", admin, 422),
        ("/v1/regions/640104/metrics?year=abc", admin, 422),
        ("/v1/regions/640104/metrics?year=", admin, 422),
        ("/v1/regions/640104/metrics?year=2025", {**admin, "Accept": "text/csv"}, 406),
    ]
    for n, (path, headers, status) in enumerate(cases):
        headers = {**headers, "X-Request-Id": f"case-{n}"}  # problem bodies carry it
        a = await cached_client.get(path, headers=headers)
        b = await uncached_client.get(path, headers=headers)
        assert a.status_code == status, (path, headers)
        assert comparable(a) == comparable(b), path
        assert a.headers["x-request-id"] == f"case-{n}"
        if a.status_code >= 400:
            assert a.headers["content-type"] == "application/problem+json", path
    body = (await cached_client.get("/v1/regions/640104/metrics?year=2025", headers=analyst)).json()
    assert body["outflow"]["amount"] == "1234.56" and body["name"]["en"]


async def test_problem_json_from_the_route(apps) -> None:
    cached, _uncached, client, _ = apps
    expectations = [
        ({}, "/v1/regions/640104/metrics?year=2025", 401),
        ({"Authorization": "Bearer point-key"}, "/v1/regions/640104/metrics?year=2025", 403),
        ({"Authorization": f"Bearer {ADMIN}"}, "/v1/regions/123456/metrics?year=2025", 404),
        ({"Authorization": f"Bearer {ADMIN}"}, "/v1/regions/640104/metrics?year=1990", 422),
        ({"Authorization": f"Bearer {ADMIN}", "Accept": "application/xml"}, "/v1/regions/640104/metrics", 406),
    ]
    for headers, path, status in expectations:
        response = await client.get(path, headers=headers)
        assert response.status_code == status, path
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["status"] == status and problem["instance"] == path.split("?")[0]
        assert problem["request_id"] == response.headers["x-request-id"]
    assert (await client.get("/v1/regions/640104/metrics", headers={})).headers["www-authenticate"]


async def test_the_resolver_cache_decides_keys_and_metrics_count_the_route(apps) -> None:
    cached, _uncached, client, uncached_client = apps
    resolver = cached.state.runtime.resolver
    response = await client.get("/v1/regions/640104/metrics?year=2025", headers={"Authorization": "Bearer analyst-key"})
    assert response.status_code == 200 and resolver.asked == 1
    response = await client.get("/v1/regions/640104/metrics?year=2025", headers={"Authorization": f"Bearer {ADMIN}"})
    assert response.status_code == 200 and resolver.asked == 1  # the bootstrap key is never sent to the registry
    response = await client.get(
        "/v1/regions/640104/metrics?year=2025", headers={"Authorization": "Bearer registry-down"}
    )
    assert response.status_code == 503 and resolver.asked == 2  # asked once for the request
    resolver.asked = 1
    label = 'route="/v1/regions/{code}/metrics",service="reporting",status="200"} 2.0'
    exposition = (await client.get("/metrics")).text
    assert label in exposition
    assert 'route="/v1/regions/{code}/metrics",service="reporting",status="503"} 1.0' in exposition
    for _ in range(2):
        await uncached_client.get("/v1/regions/640104/metrics?year=2025", headers={"Authorization": f"Bearer {ADMIN}"})
    assert label in (await uncached_client.get("/metrics")).text


async def test_answer_follows_the_projection_version(apps) -> None:
    cached, _uncached, client, _ = apps
    headers = {"Authorization": f"Bearer {ADMIN}"}
    path = "/v1/regions/640521/metrics?year=2025"
    before = await client.get(path, headers=headers)
    assert before.json()["outflow"]["count"] == 0
    feed = Feed()
    feed.certify("x", terms("640521", "640522", "10.00", "10.00"), 2025)
    await apply_page(cached, feed)
    after = await client.get(path, headers=headers)
    assert after.json()["outflow"]["count"] == 1 and after.json()["outflow"]["amount"] == "10.00"
    assert (await client.get("/v1/regions/640500/metrics?year=2025", headers=headers)).json()["outflow"][
        "amount"
    ] == "10.00"
