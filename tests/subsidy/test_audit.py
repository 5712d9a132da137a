"""The subsidy service's audit trail (issue 11): every write and administrative act (simulations, webhook
subscriptions, an admin resuming one) lands in its own append-only table, with who, what, when, from where and the
outcome; admins read it at GET /v1/audit. The real subsidy app (lifespan running) against a real registry process,
which vouches for the analyst key, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tcr_shared.platform.auth import ADMIN_KEY_ID
from tcr_shared.platform.database import Database
from tests.partners.conftest import ADMIN_KEY
from tests.support import postgres
from tests.support.audit import assert_append_only, trail
from tests.support.registry import start_registry

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("audit-registry")
    process = start_registry(tmp, tmp / "logs")
    try:
        analyst = httpx.post(f"{process.url}/v1/api-keys", json={"role": "analyst"}, headers=ADMIN, timeout=30)
        assert analyst.status_code == 201, analyst.text
        yield process.url, analyst.json()
    finally:
        process.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
async def subsidy(request, registry, tmp_path, monkeypatch):
    monkeypatch.setenv("TCR_WEBHOOK_ALLOW_LOOPBACK", "1")  # the subscription's target is on this host
    from tcr_subsidy.bootstrap import create_app
    from tcr_subsidy.settings import SubsidySettings

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'subsidy.db'}"
    else:
        request.getfixturevalue("postgres_server")
        url = postgres.create_database("tcr_subsidy_audit")
    app = create_app(
        SubsidySettings(subsidy_database_url=url, data_dir=tmp_path, admin_key=ADMIN_KEY, registry_url=registry[0])
    )
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://subsidy.test", timeout=30) as client:
                yield client, Database(url).sync_url
    finally:
        if request.param == "postgresql":
            postgres.drop_database(url)


async def test_writes_and_administrative_acts_are_recorded_and_admins_read_them(subsidy, registry):
    client, sync_url = subsidy
    analyst = {"Authorization": f"Bearer {registry[1]['secret']}"}
    analyst_id = registry[1]["id"]
    started = datetime.now(UTC) - timedelta(seconds=1)

    made = await client.post("/v1/subscriptions", json={"url": "http://127.0.0.1:9/hook"}, headers=ADMIN)
    assert made.status_code == 201, made.text
    sub_id = made.json()["id"]
    paused = await client.patch(f"/v1/subscriptions/{sub_id}", json={"status": "paused"}, headers=ADMIN)
    assert paused.status_code == 200, paused.text
    assert (await client.delete(f"/v1/subscriptions/{sub_id}", headers=ADMIN)).status_code == 204
    refused = await client.post(
        "/v1/simulations", json={"rules": {}, "from_year": 2025, "to_year": 2024}, headers=analyst
    )
    assert refused.status_code == 422
    anonymous = await client.post("/v1/simulations", json={})
    assert anonymous.status_code == 401
    await client.get(f"/v1/subscriptions/{sub_id}/deliveries", headers=ADMIN)  # reads are not acts

    since = {"from": started.isoformat()}
    entries = await trail(client, ADMIN, **since)
    assert [(e["action"], e["key_id"], e["role"], e["outcome"]) for e in entries] == [
        ("webhook.subscribe", ADMIN_KEY_ID, "admin", 201),
        ("webhook.change", ADMIN_KEY_ID, "admin", 200),
        ("webhook.delete", ADMIN_KEY_ID, "admin", 204),
        ("simulation.run", analyst_id, "analyst", 422),
        ("simulation.run", None, None, 401),
    ]
    assert [e["target"] for e in entries[:3]] == [None, sub_id, sub_id]
    assert entries[1]["path"] == "/v1/subscriptions/{sub_id}"
    assert entries[3]["method"] == "POST" and entries[3]["path"] == "/v1/simulations"
    for entry in entries:
        assert entry["address"] == "127.0.0.1"
        assert datetime.fromisoformat(entry["at"]) >= started

    assert [e["action"] for e in await trail(client, ADMIN, key_id=analyst_id, **since)] == ["simulation.run"]
    changes = await trail(client, ADMIN, action="webhook.change", **since)
    assert [e["target"] for e in changes] == [sub_id]
    assert await trail(client, ADMIN, to=started.isoformat(), key_id=analyst_id) == []

    assert (await client.get("/v1/audit", headers=analyst)).status_code == 403
    assert (await client.get("/v1/audit")).status_code == 401
    bad = await client.get("/v1/audit", params={"page_token": "nonsense"}, headers=ADMIN)
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
    assert_append_only(sync_url)
