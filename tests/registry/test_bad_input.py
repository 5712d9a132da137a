"""Bad input gets an RFC 9457 problem (application/problem+json) and changes nothing: the log's head does not
move and the point's list stays empty. Also Idempotency-Key replay and the 1 MiB body limit."""

from __future__ import annotations

import copy
import json

import pytest

from tests.support.asserts import assert_problem
from tests.support.registry import contract_body, credit_code, party


def _set(body: dict, path: str, value) -> dict:
    body = copy.deepcopy(body)
    *parents, last = path.split(".")
    target = body
    for key in parents:
        target = target[key]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value
    return body


_DELETE = object()
_VALID_CODE = credit_code("640104")
_WRONG_CHECK = _VALID_CODE[:-1] + ("0" if _VALID_CODE[-1] != "0" else "1")
_PERSON = {"name": "李四", "kind": "individual", "region": "640104", "id_number": "110105194912310021"}  # bad check

BAD_SUBMISSIONS = [
    # (case, path, value, field named in `errors`)
    ("unknown field", "colour", "red", "colour"),
    ("unknown party field", "seller.email", "a@b.cn", "seller.email"),
    ("missing field", "title", _DELETE, "title"),
    ("missing party", "buyer", _DELETE, "buyer"),
    ("wrong type", "signed_on", "yesterday", "signed_on"),
    ("wrong type for a party", "seller", "宁夏大学", "seller"),
    ("money as a JSON number", "amount", 9000000.00, "amount"),
    ("money as an integer", "technology_amount", 8000000, "technology_amount"),
    ("money with three decimals", "amount", "9000000.000", "amount"),
    ("money with one decimal", "technology_amount", "8000000.0", "technology_amount"),
    ("negative money", "amount", "-1.00", "amount"),
    ("technology_amount > amount", "technology_amount", "9000000.01", "technology_amount"),
    ("technology_amount zero", "technology_amount", "0.00", "technology_amount"),
    ("amount zero", "amount", "0.00", "amount"),
    ("unknown category", "category", "painting", "category"),
    ("unknown subcategory", "subcategory", "patent_forever", "subcategory"),
    ("subcategory of another category", "subcategory", "commissioned", "subcategory"),
    ("unknown consideration", "consideration", "barter", "consideration"),
    ("credit code with a wrong check digit", "seller.credit_code", _WRONG_CHECK, "seller.credit_code"),
    ("credit code too short", "buyer.credit_code", "91640181MA7F3K2Q", "buyer.credit_code"),
    ("organisation without credit code", "buyer.credit_code", None, "buyer.credit_code"),
    ("unknown party kind", "buyer.kind", "alien", "buyer.kind"),
    ("Ningxia region not on the list", "seller.region", "640199", "seller.region"),
    ("non-province prefix", "buyer.region", "990101", "buyer.region"),
    ("region not six digits", "buyer.region", "6401", "buyer.region"),
    ("organisation without region", "seller.region", None, "seller.region"),
    ("signed in the future", "signed_on", "2099-01-01", "signed_on"),
    ("empty title", "title", "", "title"),
    ("individual with a bad id_number", "seller", _PERSON, "seller.id_number"),
    (
        "individual without id_number",
        "seller",
        {"name": "李四", "kind": "individual", "region": "640104"},
        "seller.id_number",
    ),
    (
        "individual with a credit code",
        "seller",
        {**_PERSON, "id_number": "11010519491231002X", "credit_code": _VALID_CODE},
        "seller.credit_code",
    ),
    ("foreign party without country", "seller", {"name": "Fraunhofer GmbH", "kind": "foreign"}, "seller.country"),
    (
        "foreign party with a bad country",
        "seller",
        {"name": "Fraunhofer GmbH", "kind": "foreign", "country": "Germany"},
        "seller.country",
    ),
    (
        "foreign party with a region",
        "seller",
        {"name": "Fraunhofer GmbH", "kind": "foreign", "country": "DE", "region": "640104"},
        "seller.region",
    ),
    ("country on a Chinese party", "buyer.country", "CN", "buyer.country"),
    ("title as a number", "title", 5, "title"),
    ("amount as a list", "amount", ["9000000.00"], "amount"),
    (
        "intermediary with a wrong check digit",
        "intermediary",
        {"name": "中介", "kind": "enterprise", "credit_code": _WRONG_CHECK, "region": "640104"},
        "intermediary.credit_code",
    ),
]


@pytest.mark.parametrize("case, path, value, field", BAD_SUBMISSIONS, ids=[c[0] for c in BAD_SUBMISSIONS])
async def test_bad_submission_is_422_naming_the_field(registry, case, path, value, field):
    point = await registry.point("6400")
    head = await registry.head()
    r = await registry.client.post("/v1/contracts", json=_set(contract_body(), path, value), headers=point.headers)
    assert_problem(r, 422, field)
    assert r.json()["instance"] == "/v1/contracts"
    assert await registry.head() == head


async def test_party_rules_are_422_and_change_nothing(registry):
    point = await registry.point("6400")
    seller = party("enterprise", "640104")
    head = await registry.head()
    cases = [
        (contract_body(seller=seller, buyer=dict(seller)), "buyer.credit_code"),  # seller == buyer
        (
            contract_body(seller=seller, buyer={**party("enterprise", "640181"), "credit_code": seller["credit_code"]}),
            "buyer.credit_code",
        ),  # same legal person (credit code) under another name
        (
            contract_body(seller=party("enterprise", "110108"), buyer=party("enterprise", "310115")),
            "seller.region",
        ),  # no party in Ningxia
        (
            contract_body(
                seller=party("enterprise", "110108"), buyer={"name": "Acme", "kind": "foreign", "country": "US"}
            ),
            "seller.region",
        ),
        (contract_body(intermediary=dict(seller), seller=seller), "intermediary.credit_code"),
    ]
    for body, field in cases:
        assert_problem(await registry.client.post("/v1/contracts", json=body, headers=point.headers), 422, field)
    assert await registry.head() == head
    await registry.index_caught_up()
    assert (await registry.list(point.headers))["contracts"] == []


async def test_every_error_is_named_at_once(registry):
    point = await registry.point("6401")
    body = contract_body(category="licence", subcategory="commissioned", technology_amount="9900000.00")
    body["buyer"]["credit_code"] = _WRONG_CHECK
    r = await registry.client.post("/v1/contracts", json=body, headers=point.headers)
    fields = {e["field"] for e in assert_problem(r, 422)["errors"]}
    assert {"subcategory", "technology_amount", "buyer.credit_code"} <= fields


async def test_malformed_json_is_400(registry):
    point = await registry.point("6401")
    head = await registry.head()
    for raw in (b'{"title": "x",', b"not json", b'{"title": "\xff"}'):
        r = await registry.client.post(
            "/v1/contracts", content=raw, headers={**point.headers, "Content-Type": "application/json"}
        )
        assert_problem(r, 400)
    r = await registry.client.post("/v1/contracts", json=[contract_body()], headers=point.headers)
    assert_problem(r, 422)
    cid = (await registry.submit(point))["id"]
    head = await registry.head()
    r = await registry.client.post(
        f"/v1/contracts/{cid}/certify", content=b"{oops", headers={**point.headers, "Content-Type": "application/json"}
    )
    assert_problem(r, 400)
    assert await registry.head() == head


async def test_bad_certify_reject_revoke_bodies(registry):
    point = await registry.point("6401")
    contract = await registry.submit(point)
    url = f"/v1/contracts/{contract['id']}"
    head = await registry.head()
    cases = [
        ("certify", {"certified_at": "next tuesday"}, "certified_at"),
        ("certify", {"registration_number": "2025640101000001"}, "registration_number"),
        ("certify", {"technology_amount": 1000.5}, "technology_amount"),
        ("reject", {"reason": "x"}, "reason_code"),
        ("reject", {"reason_code": "R1", "reason": "x", "extra": 1}, "extra"),
        ("withdraw", {"reason": 5}, "reason"),
        ("amend", {"reason": "x", "changes": {"seller": {"kind": "individual"}}}, "changes.seller.kind"),
        ("amend", {"reason": "x", "changes": {"signed_on": "2025-01-01"}}, "changes.signed_on"),
    ]
    for action, body, field in cases:
        assert_problem(await registry.client.post(f"{url}/{action}", json=body, headers=point.headers), 422, field)
    assert await registry.head() == head


async def test_idempotency_key_must_be_sensible(registry):
    point = await registry.point("6401")
    head = await registry.head()
    r = await registry.client.post(
        "/v1/contracts", json=contract_body(), headers={**point.headers, "Idempotency-Key": "k" * 201}
    )
    assert_problem(r, 422, "Idempotency-Key")
    assert await registry.head() == head


async def test_same_idempotency_key_replays_the_first_answer(registry):
    point = await registry.point("6401")
    body = contract_body()
    headers = {**point.headers, "Idempotency-Key": "submission-0001"}
    head = await registry.head()
    first = await registry.client.post("/v1/contracts", json=body, headers=headers)
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    again = await registry.client.post("/v1/contracts", json=body, headers=headers)
    assert again.status_code == 201, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    for name in ("Location", "ETag", "TCR-Position"):
        assert again.headers[name] == first.headers[name]
    assert await registry.head() == head + 1  # one contract, one event

    different = await registry.client.post("/v1/contracts", json={**body, "title": "另一份合同"}, headers=headers)
    assert_problem(different, 422, "Idempotency-Key")
    assert await registry.head() == head + 1

    # Another point's key may use the same Idempotency-Key for its own contract.
    other = await registry.point("6401")
    r = await registry.client.post(
        "/v1/contracts", json=body, headers={**other.headers, "Idempotency-Key": "submission-0001"}
    )
    assert r.status_code == 201 and r.json()["id"] != first.json()["id"]
    await registry.index_caught_up()
    assert [c["id"] for c in (await registry.list(point.headers))["contracts"]] == [first.json()["id"]]


async def test_concurrent_retries_with_one_key_make_one_contract(registry):
    import asyncio

    point = await registry.point("6401")
    body = contract_body()
    headers = {**point.headers, "Idempotency-Key": "burst-1"}
    head = await registry.head()
    answers = await asyncio.gather(
        *(registry.client.post("/v1/contracts", json=body, headers=headers) for _ in range(8))
    )
    assert {r.status_code for r in answers} == {201}
    assert len({r.json()["id"] for r in answers}) == 1
    assert await registry.head() == head + 1


async def test_idempotent_certify_replays_and_issues_one_number(registry):
    point = await registry.point("6401")
    contract = await registry.submit(point)
    url = f"/v1/contracts/{contract['id']}/certify"
    headers = {**point.headers, "Idempotency-Key": "cert-1"}
    body = {"certified_at": "2025-03-05T10:00:00+08:00", "expert_review_ref": "Z-1"}
    first = await registry.client.post(url, json=body, headers=headers)
    again = await registry.client.post(url, json=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["registration_number"] == first.json()["registration_number"]
    # Without the key, the second certify is a state conflict.
    assert_problem(await registry.client.post(url, json=body, headers=point.headers), 409)
    assert_problem(await registry.client.post(url, json={**body, "expert_review_ref": "Z-2"}, headers=headers), 422)


async def test_body_over_one_mebibyte_is_413(registry):
    point = await registry.point("6401")
    head = await registry.head()
    big = contract_body(title="技" * 10)
    big["padding"] = "x" * (1024 * 1024)
    raw = json.dumps(big).encode()
    r = await registry.client.post(
        "/v1/contracts", content=raw, headers={**point.headers, "Content-Type": "application/json"}
    )
    assert_problem(r, 413)

    async def chunks():  # no Content-Length: the limit is counted while the body streams in
        for start in range(0, len(raw), 64 * 1024):
            yield raw[start : start + 64 * 1024]

    r = await registry.client.post(
        "/v1/contracts", content=chunks(), headers={**point.headers, "Content-Type": "application/json"}
    )
    assert_problem(r, 413)
    assert await registry.head() == head
    # Just under the limit is read (and refused for its unknown field, not its size).
    ok_size = contract_body()
    ok_size["padding"] = "x" * (1024 * 1024 - len(json.dumps(ok_size)) - 100)
    r = await registry.client.post("/v1/contracts", json=ok_size, headers=point.headers)
    assert_problem(r, 422, "padding")
