"""The happy path of a contract's life, on both backends."""

from __future__ import annotations

from tests.support.registry import auth, contract_body, make_key, make_point, registry_in_process


async def test_submit_certify_amend_revoke(database_url, tmp_path):
    async with registry_in_process(database_url, tmp_path) as client:
        point = await make_point(client, "6401", "01")
        r = await client.post("/v1/contracts", json=contract_body(), headers=point.headers)
        assert r.status_code == 201, r.text
        contract = r.json()
        assert r.headers["Location"] == f"/v1/contracts/{contract['id']}"
        assert r.headers["ETag"] == '"1"'
        submitted_at = int(r.headers["TCR-Position"])

        r = await client.post(
            f"/v1/contracts/{contract['id']}/certify",
            json={"certified_at": "2025-03-10T10:00:00+08:00", "expert_review_ref": "ZJ-1"},
            headers=point.headers,
        )
        assert r.status_code == 200, r.text
        assert r.json()["registration_number"] == "2025640101000001"
        assert r.json()["policy_year"] == 2025
        assert int(r.headers["TCR-Position"]) > submitted_at

        r = await client.post(
            f"/v1/contracts/{contract['id']}/amend",
            json={"reason": "补充协议", "changes": {"amount": "9500000.00"}},
            headers={**point.headers, "If-Match": '"2"'},
        )
        assert r.status_code == 200, r.text
        assert r.json()["amount"] == "9500000.00"

        r = await client.post(f"/v1/contracts/{contract['id']}/revoke", json={"reason": "虚假"}, headers=point.headers)
        assert r.status_code == 200 and r.json()["status"] == "revoked"

        analyst = await make_key(client, "analyst")
        r = await client.get(f"/v1/contracts/{contract['id']}/history", headers=auth(analyst))
        assert [e["type"].split(".")[3] for e in r.json()["events"]] == ["submitted", "certified", "amended", "revoked"]

        r = await client.get("/v1/events?after=0&limit=100", headers=auth(analyst))
        types = [e["type"] for e in r.json()["events"]]
        assert types == [
            "tcr.registry.contract.submitted.v1",
            "tcr.registry.contract.certified.v1",
            "tcr.registry.contract.amended.v1",
            "tcr.registry.contract.revoked.v1",
        ]
