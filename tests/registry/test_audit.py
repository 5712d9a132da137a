"""The audit trail: every write and administrative act (who, what, when, from where, how it ended) lands in an
append-only table that admins read at GET /v1/audit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, text

from tests.support.registry import ADMIN, auth


async def trail(registry, **params) -> list[dict]:
    response = await registry.client.get("/v1/audit", params=params, headers=ADMIN)
    assert response.status_code == 200, response.text
    return response.json()["entries"]


async def test_every_write_is_recorded_with_who_what_when_where_and_outcome(registry):
    started = datetime.now(UTC) - timedelta(seconds=1)
    point = await registry.point("6401")
    contract = await registry.submit(point)
    await registry.act(point, contract["id"], "certify", {"expert_review_ref": "R"})
    refused = await registry.client.post(f"/v1/contracts/{contract['id']}/certify", json={}, headers=point.headers)
    assert refused.status_code == 409
    anonymous = await registry.client.post("/v1/contracts", json={}, headers=auth("not-a-key"))
    assert anonymous.status_code == 401
    await registry.client.get(f"/v1/contracts/{contract['id']}", headers=point.headers)  # reads are not acts

    key_id = (await registry.client.get("/v1/whoami", headers=point.headers)).json()["key_id"]
    mine = await trail(registry, key_id=key_id, **{"from": started.isoformat()})
    assert [(e["action"], e["outcome"]) for e in mine] == [
        ("contract.submit", 201),
        ("contract.certify", 200),
        ("contract.certify", 409),
    ]
    for entry in mine:
        assert entry["role"] == "point"
        assert entry["point_id"] == point.id
        assert entry["target"] in (None, contract["id"])
        assert entry["address"] == "127.0.0.1"
        assert datetime.fromisoformat(entry["at"]) >= started
    assert mine[1]["path"] == "/v1/contracts/{contract_id}/certify"
    assert mine[1]["target"] == contract["id"]

    administrative = await trail(registry, action="point.create", **{"from": started.isoformat()})
    assert [(e["key_id"], e["role"], e["outcome"]) for e in administrative] == [("bootstrap-admin", "admin", 201)]
    issued = await trail(registry, action="api_key.issue", **{"from": started.isoformat()})
    assert len(issued) == 1
    unknown = [e for e in await trail(registry, **{"from": started.isoformat()}) if e["outcome"] == 401]
    assert [(e["key_id"], e["action"]) for e in unknown] == [(None, "contract.submit")]
    assert await trail(registry, key_id=key_id, to=started.isoformat()) == []


async def test_the_trail_is_for_admins_and_paginated(registry):
    point = await registry.point("6401")
    for _ in range(3):
        await registry.submit(point)
    assert (await registry.client.get("/v1/audit", headers=point.headers)).status_code == 403
    assert (await registry.client.get("/v1/audit", headers=await registry.key("analyst"))).status_code == 403

    seen, token = [], None
    while True:
        params = {"limit": 2, **({"page_token": token} if token else {})}
        page = (await registry.client.get("/v1/audit", params=params, headers=ADMIN)).json()
        seen += page["entries"]
        token = page["next_page_token"]
        if token is None:
            break
    ids = [e["id"] for e in seen]
    assert ids == sorted(set(ids))
    assert len([e for e in seen if e["action"] == "contract.submit" and e["point_id"] == point.id]) == 3
    bad = await registry.client.get("/v1/audit", params={"page_token": "nonsense"}, headers=ADMIN)
    assert bad.status_code == 422


async def test_the_audit_table_is_append_only(registry):
    await registry.point("6401")
    url = registry.runtime.database.sync_url
    # On SQLite the running registry may hold the write lock for a moment (its own audit writes): wait for it, so
    # what refuses the statement is the trigger, not a busy database.
    engine = create_engine(url, connect_args={"timeout": 30} if url.startswith("sqlite") else {})
    try:
        for statement in ("UPDATE audit_log SET outcome = 200", "DELETE FROM audit_log"):
            with pytest.raises(Exception, match="append-only"), engine.begin() as conn:
                conn.execute(text(statement))
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM audit_log")).scalar_one() > 0
    finally:
        engine.dispose()
