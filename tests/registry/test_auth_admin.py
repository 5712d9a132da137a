"""Keys and roles (401/403), a point's jurisdiction, and the admin endpoints: points, API keys (secret shown
once, stored as a hash), whoami, regions."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import select

from tcr_registry.adapters.persistence.models import api_keys
from tests.support.asserts import assert_problem
from tests.support.registry import ADMIN, auth, contract_body, party

CID = "0b7a2a8e-2b7f-4c4e-9d51-3f1f5b7d8a11"


async def test_no_key_or_unknown_key_is_401(registry):
    point = await registry.point("6401")
    contract = await registry.submit(point)
    requests = [
        ("POST", "/v1/contracts", contract_body()),
        ("POST", f"/v1/contracts/{contract['id']}/certify", {}),
        ("GET", f"/v1/contracts/{contract['id']}", None),
        ("GET", f"/v1/contracts/{contract['id']}/history", None),
        ("GET", "/v1/contracts", None),
        ("GET", "/v1/events", None),
        ("GET", "/v1/whoami", None),
        ("GET", "/v1/points", None),
        ("POST", "/v1/points", {"number": "99", "name": "x", "jurisdiction": "6401"}),
        ("POST", "/v1/api-keys", {"role": "analyst"}),
    ]
    head = await registry.head()
    for headers in ({}, auth("tcr_not-a-key"), {"Authorization": "Basic dXNlcjpwdw=="}, {"Authorization": "Bearer "}):
        for method, url, body in requests:
            r = await registry.client.request(method, url, json=body, headers=headers)
            assert_problem(r, 401)
            assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert await registry.head() == head


async def test_wrong_role_is_403(registry):
    point = await registry.point("6401")
    contract = await registry.submit(point)
    cid = contract["id"]
    analyst, partner = await registry.key("analyst"), await registry.key("partner")
    head = await registry.head()
    forbidden = [
        (analyst, "POST", "/v1/contracts", contract_body()),  # analysts read, they do not register
        (partner, "POST", "/v1/contracts", contract_body()),
        (analyst, "POST", f"/v1/contracts/{cid}/certify", {}),
        (analyst, "POST", f"/v1/contracts/{cid}/revoke", {"reason": "r"}),
        (ADMIN, "POST", "/v1/contracts", contract_body()),  # an admin is not a registration point
        (ADMIN, "POST", f"/v1/contracts/{cid}/certify", {}),
        (partner, "GET", "/v1/contracts", None),  # partners read the feed, not the register
        (partner, "GET", f"/v1/contracts/{cid}", None),
        (partner, "GET", f"/v1/contracts/{cid}/history", None),
        (point.headers, "GET", "/v1/events", None),  # points do not read the partner feed
        (point.headers, "GET", "/v1/events/stream", None),
        (point.headers, "POST", "/v1/api-keys", {"role": "analyst"}),  # only admins issue keys
        (point.headers, "POST", "/v1/points", {"number": "98", "name": "x", "jurisdiction": "6401"}),
        (analyst, "POST", "/v1/api-keys", {"role": "admin"}),
        (partner, "POST", "/v1/points", {"number": "98", "name": "x", "jurisdiction": "6401"}),
        (analyst, "DELETE", "/v1/api-keys/whatever", None),
    ]
    for headers, method, url, body in forbidden:
        r = await registry.client.request(method, url, json=body, headers=headers)
        assert_problem(r, 403)
    assert await registry.head() == head
    # ...while the right roles succeed.
    assert (await registry.client.get("/v1/events", headers=partner)).status_code == 200
    assert (await registry.client.get("/v1/events", headers=analyst)).status_code == 200
    assert (await registry.client.get("/v1/contracts", headers=analyst)).status_code == 200
    assert (await registry.client.get(f"/v1/contracts/{cid}", headers=ADMIN)).status_code == 200


async def test_point_outside_its_jurisdiction_is_403(registry):
    yinchuan = await registry.point("6401")
    guyuan = await registry.point("6404")
    regional = await registry.point("6400")
    head = await registry.head()
    outside = [
        contract_body(seller=party("university", "640402")),  # seller in Guyuan
        contract_body(seller=party("enterprise", "110108"), buyer=party("enterprise", "640502")),  # buyer decides
        contract_body(
            seller={"name": "Fraunhofer GmbH", "kind": "foreign", "country": "DE"}, buyer=party("enterprise", "640302")
        ),
        # The seller is in Ningxia (Guyuan) and decides, though the buyer is in Yinchuan.
        contract_body(seller=party("enterprise", "640422"), buyer=party("enterprise", "640104")),
    ]
    for body in outside:
        assert_problem(await registry.client.post("/v1/contracts", json=body, headers=yinchuan.headers), 403)
    assert await registry.head() == head

    # Seller outside Ningxia: the buyer's region decides.
    body = contract_body(seller=party("enterprise", "310115"), buyer=party("enterprise", "640181"))
    r = await registry.client.post("/v1/contracts", json=body, headers=yinchuan.headers)
    assert r.status_code == 201, r.text
    assert_problem(await registry.client.post("/v1/contracts", json=body, headers=guyuan.headers), 403)
    # Foreign seller, buyer in Guyuan.
    body = contract_body(
        seller={"name": "Acme Inc.", "kind": "foreign", "country": "US"}, buyer=party("enterprise", "640425")
    )
    r = await registry.client.post("/v1/contracts", json=body, headers=guyuan.headers)
    assert r.status_code == 201, r.text
    foreign_deal = r.json()

    # The regional point (6400) may register anywhere in Ningxia, and act on others' contracts.
    for body in outside + [contract_body(seller=party("enterprise", "640521"))]:
        r = await registry.client.post("/v1/contracts", json=body, headers=regional.headers)
        assert r.status_code == 201, r.text
    r = await registry.client.post(
        f"/v1/contracts/{foreign_deal['id']}/certify", json={"expert_review_ref": "Z"}, headers=regional.headers
    )
    assert r.status_code == 200, r.text
    assert r.json()["registration_number"][4:10] == f"6400{regional.number}"

    # A prefecture point may not act on, nor read, another prefecture's contract.
    head = await registry.head()
    cid = foreign_deal["id"]
    assert_problem(
        await registry.client.post(f"/v1/contracts/{cid}/revoke", json={"reason": "r"}, headers=yinchuan.headers), 403
    )
    assert_problem(await registry.client.get(f"/v1/contracts/{cid}", headers=yinchuan.headers), 403)
    assert_problem(await registry.client.get(f"/v1/contracts/{cid}/history", headers=yinchuan.headers), 403)
    assert await registry.head() == head
    # Another point of the same prefecture may.
    guyuan_2 = await registry.point("6404")
    r = await registry.client.post(f"/v1/contracts/{cid}/revoke", json={"reason": "r"}, headers=guyuan_2.headers)
    assert r.status_code == 200, r.text


async def test_create_points(registry):
    n = 90 if registry.backend == "sqlite" else 91
    r = await registry.client.post(
        "/v1/points", json={"number": f"{n}", "name": "固原市登记点", "jurisdiction": "6404"}, headers=ADMIN
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["registration_prefix"] == f"6404{n}" and created["jurisdiction"] == "6404"
    assert r.headers["Location"] == f"/v1/points/{created['id']}"
    # Numbers are unique within a jurisdiction, not across.
    again = await registry.client.post(
        "/v1/points", json={"number": f"{n}", "name": "x", "jurisdiction": "6404"}, headers=ADMIN
    )
    assert_problem(again, 409)
    other = await registry.client.post(
        "/v1/points", json={"number": f"{n}", "name": "x", "jurisdiction": "6405"}, headers=ADMIN
    )
    assert other.status_code == 201
    for bad, field in (
        ({"number": "1", "name": "x", "jurisdiction": "6401"}, "number"),
        ({"number": "ab", "name": "x", "jurisdiction": "6401"}, "number"),
        ({"number": "12", "name": "x", "jurisdiction": "6406"}, "jurisdiction"),
        ({"number": "12", "name": "x", "jurisdiction": "640100"}, "jurisdiction"),
        ({"number": "12", "name": "x", "jurisdiction": "1101"}, "jurisdiction"),
        ({"number": "12", "jurisdiction": "6401"}, "name"),
        ({"number": "12", "name": "x", "jurisdiction": "6401", "x": 1}, "x"),
    ):
        assert_problem(await registry.client.post("/v1/points", json=bad, headers=ADMIN), 422, field)
    analyst = await registry.key("analyst")
    r = await registry.client.get("/v1/points", headers=analyst)
    assert r.status_code == 200
    listed = {p["id"]: p for p in r.json()["points"]}
    assert listed[created["id"]]["name"] == "固原市登记点"


async def test_api_keys_secret_shown_once_and_stored_hashed(registry):
    point = await registry.point("6403")
    r = await registry.client.post(
        "/v1/api-keys", json={"role": "point", "point_id": point.id, "label": "吴忠 2"}, headers=ADMIN
    )
    assert r.status_code == 201, r.text
    issued = r.json()
    secret = issued["secret"]
    assert issued["role"] == "point" and issued["point_id"] == point.id and len(secret) >= 32
    async with registry.runtime.engine.connect() as conn:
        rows = (await conn.execute(select(api_keys))).mappings().all()
    row = next(row for row in rows if row["id"] == issued["id"])
    assert row["key_hash"] == hashlib.sha256(secret.encode()).hexdigest()
    assert all(secret not in str(dict(r)) for r in rows)  # the secret itself is stored nowhere
    # whoami tells who the key belongs to, and never shows the secret again.
    r = await registry.client.get("/v1/whoami", headers=auth(secret))
    assert r.status_code == 200
    assert r.json() == {
        "key_id": issued["id"],
        "role": "point",
        "point_id": point.id,
        "jurisdiction": "6403",
        "point_number": point.number,
    }
    assert secret not in r.text
    # Each role's key works for that role.
    for role in ("partner", "analyst", "admin"):
        r = await registry.client.post("/v1/api-keys", json={"role": role}, headers=ADMIN)
        assert r.status_code == 201
        who = await registry.client.get("/v1/whoami", headers=auth(r.json()["secret"]))
        assert who.json()["role"] == role and who.json()["point_id"] is None
    r = await registry.client.get("/v1/whoami", headers=ADMIN)
    assert r.json()["role"] == "admin" and r.json()["key_id"] == "bootstrap-admin"
    # An issued admin key administers.
    admin2 = auth(r.json()["key_id"])
    assert_problem(await registry.client.get("/v1/whoami", headers=admin2), 401)


async def test_api_key_refusals_and_revocation(registry):
    cases = [
        ({"role": "point"}, "point_id"),
        ({"role": "point", "point_id": "no-such-point"}, "point_id"),
        ({"role": "analyst", "point_id": "x"}, "point_id"),
        ({"role": "superuser"}, "role"),
        ({"role": "partner", "scope": "all"}, "scope"),
    ]
    for body, field in cases:
        assert_problem(await registry.client.post("/v1/api-keys", json=body, headers=ADMIN), 422, field)
    r = await registry.client.post("/v1/api-keys", json={"role": "analyst"}, headers=ADMIN)
    key_id, secret = r.json()["id"], r.json()["secret"]
    assert (await registry.client.get("/v1/whoami", headers=auth(secret))).status_code == 200
    r = await registry.client.delete(f"/v1/api-keys/{key_id}", headers=ADMIN)
    assert r.status_code == 204
    assert_problem(await registry.client.get("/v1/whoami", headers=auth(secret)), 401)
    assert_problem(await registry.client.get("/v1/contracts", headers=auth(secret)), 401)
    assert_problem(await registry.client.delete(f"/v1/api-keys/{key_id}", headers=ADMIN), 404)


async def test_issued_admin_key_administers(registry):
    r = await registry.client.post("/v1/api-keys", json={"role": "admin", "label": "ops"}, headers=ADMIN)
    admin2 = auth(r.json()["secret"])
    r = await registry.client.post(
        "/v1/points", json={"number": "77", "name": "x", "jurisdiction": "6405"}, headers=admin2
    )
    assert r.status_code == 201, r.text
    r = await registry.client.post("/v1/api-keys", json={"role": "point", "point_id": r.json()["id"]}, headers=admin2)
    assert r.status_code == 201
    point = auth(r.json()["secret"])
    r = await registry.client.post(
        "/v1/contracts", json=contract_body(seller=party("enterprise", "640502")), headers=point
    )
    assert r.status_code == 201, r.text


async def test_regions_lists_ningxia(registry):
    r = await registry.client.get("/v1/regions")
    assert r.status_code == 200
    regions = {region["code"]: region for region in r.json()["regions"]}
    counties = [c for c in regions.values() if c["level"] == "county"]
    prefectures = [c for c in regions.values() if c["level"] == "prefecture"]
    assert len(counties) == 22 and len(prefectures) == 5
    assert regions["640104"]["name"]["zh"] == "兴庆区" and regions["640104"]["parent"] == "640100"
    assert regions["640522"]["parent"] == "640500"
    assert regions["640000"]["level"] == "region"
    assert all(c["parent"] in regions for c in counties)


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
async def test_operations_endpoints_need_no_key(registry, path):
    r = await registry.client.get(path)
    assert r.status_code == 200
