"""Hostile input (issue 11): the one text rule (tcr_shared.language.text) on every name, title, reason, label and
reference the registry accepts, and date bounds that no arithmetic can overflow. Each refusal is a 422
problem+json naming the field, and nothing changes: the log's head stays, no point or key is created."""

from __future__ import annotations

import unicodedata

import pytest
from sqlalchemy import func, select

from tcr_registry.adapters.persistence.models import api_keys, points
from tests.support.asserts import assert_problem
from tests.support.registry import ADMIN, contract_body

# (what, the character) - each breaks a store, a terminal or a reader
HOSTILE = [
    ("NUL", "\x00"),
    ("bell", "\x07"),
    ("escape", "\x1b[31m"),
    ("C1 control", "\x85"),
    ("right-to-left override", "\u202e"),
    ("first-strong isolate", "\u2068"),
    ("zero-width space", "\u200b"),
    ("zero-width joiner", "\u200d"),
    ("byte order mark", "\ufeff"),
]
_IDS = [h[0] for h in HOSTILE]


def _submission(path: str, text: str) -> dict:
    body = contract_body()
    if path == "title":
        body["title"] = f"枸杞{text}技术"
    elif path == "result_id":
        body["result_id"] = f"ZL2021{text}1"
    else:
        role, field = path.split(".")
        body[role] = {**body[role], field: f"宁夏{text}大学"}
    return body


@pytest.mark.parametrize("what, text", HOSTILE, ids=_IDS)
@pytest.mark.parametrize("path", ["title", "seller.name", "buyer.name", "result_id"])
async def test_a_submission_with_hostile_text_is_422(registry, path, what, text):
    point = await registry.point("6401")
    head = await registry.head()
    r = await registry.client.post("/v1/contracts", json=_submission(path, text), headers=point.headers)
    message = [e for e in assert_problem(r, 422, path)["errors"] if e["field"] == path][0]["message"]
    assert f"U+{ord(text[0]):04X}" in message
    assert await registry.head() == head


@pytest.mark.parametrize("what, text", HOSTILE, ids=_IDS)
async def test_every_write_refuses_hostile_text(registry, what, text):
    point = await registry.point("6401")
    submitted = (await registry.submit(point))["id"]
    certified = (await registry.certified(point))["id"]
    head = await registry.head()
    bad = f"原因{text}说明"
    cases = [
        (submitted, "reject", {"reason_code": "incomplete", "reason": bad}, "reason"),
        (submitted, "reject", {"reason_code": f"R{text}1", "reason": "缺页"}, "reason_code"),
        (submitted, "withdraw", {"reason": bad}, "reason"),
        (submitted, "certify", {"expert_review_ref": f"ZJ{text}1"}, "expert_review_ref"),
        (certified, "amend", {"reason": bad, "changes": {"title": "新标题"}}, "reason"),
        (certified, "amend", {"reason": "更正", "changes": {"title": bad}}, "changes.title"),
        (certified, "amend", {"reason": "更正", "changes": {"buyer": {"name": bad}}}, "changes.buyer.name"),
        (certified, "revoke", {"reason": bad}, "reason"),
    ]
    for contract_id, action, body, field in cases:
        r = await registry.client.post(f"/v1/contracts/{contract_id}/{action}", json=body, headers=point.headers)
        assert_problem(r, 422, field)
    assert await registry.head() == head


async def _counts(registry) -> tuple[int, int]:
    async with registry.runtime.engine.connect() as connection:
        n_points = (await connection.execute(select(func.count()).select_from(points))).scalar_one()
        n_keys = (await connection.execute(select(func.count()).select_from(api_keys))).scalar_one()
    return n_points, n_keys


@pytest.mark.parametrize("what, text", HOSTILE, ids=_IDS)
async def test_admin_writes_refuse_hostile_names_and_labels(registry, what, text):
    before = await _counts(registry)
    r = await registry.client.post(
        "/v1/points", json={"number": "77", "name": f"登记{text}点", "jurisdiction": "6401"}, headers=ADMIN
    )
    assert_problem(r, 422, "name")
    r = await registry.client.post("/v1/api-keys", json={"role": "analyst", "label": f"k{text}ey"}, headers=ADMIN)
    assert_problem(r, 422, "label")
    r = await registry.client.post("/v1/api-keys", json={"role": "point", "point_id": f"p{text}1"}, headers=ADMIN)
    assert_problem(r, 422, "point_id")
    assert await _counts(registry) == before


async def test_free_text_may_hold_lines_but_names_may_not(registry):
    point = await registry.point("6401")
    contract_id = (await registry.submit(point))["id"]
    head = await registry.head()
    r = await registry.client.post(
        f"/v1/contracts/{contract_id}/amend",
        json={"reason": "ok", "changes": {"seller": {"name": "宁夏\n大学"}}},
        headers=point.headers,
    )
    assert_problem(r, 422, "changes.seller.name")
    assert await registry.head() == head
    reason = "第一条：缺少签字页。\n第二条：\t金额不符。"
    r = await registry.client.post(
        f"/v1/contracts/{contract_id}/reject",
        json={"reason_code": "incomplete", "reason": reason},
        headers=point.headers,
    )
    assert r.status_code == 200, r.text
    history = (await registry.client.get(f"/v1/contracts/{contract_id}/history", headers=point.headers)).json()
    assert history["events"][-1]["data"]["reason"] == reason


async def test_text_is_kept_in_nfc(registry):
    """One word, one spelling: a decomposed é (e + U+0301) is stored composed."""
    point = await registry.point("6401")
    decomposed = "Caf" + "e\u0301" + " Tech"
    body = contract_body(title=f"Licence {decomposed}")
    body["buyer"] = {**body["buyer"], "name": decomposed}
    created = await registry.client.post("/v1/contracts", json=body, headers=point.headers)
    assert created.status_code == 201, created.text
    composed = unicodedata.normalize("NFC", decomposed)
    assert composed != decomposed
    assert (created.json()["title"], created.json()["buyer"]["name"]) == (f"Licence {composed}", composed)


async def test_signed_on_has_a_lower_bound(registry):
    point = await registry.point("6401")
    head = await registry.head()
    for signed_on in ("0001-01-01", "1984-12-31"):
        r = await registry.client.post("/v1/contracts", json=contract_body(signed_on=signed_on), headers=point.headers)
        message = assert_problem(r, 422, "signed_on")["errors"][0]["message"]
        assert "1985-01-01" in message
    assert await registry.head() == head
    r = await registry.client.post("/v1/contracts", json=contract_body(signed_on="1985-01-01"), headers=point.headers)
    assert r.status_code == 201, r.text


@pytest.mark.parametrize(
    "certified_at, bound",
    [
        ("9999-12-31T23:59:59Z", "outside the range"),  # Shanghai time would be in year 10000
        ("0001-01-01T00:00:00+14:00", "outside the range"),  # UTC would be in year 0
        ("0001-01-02T00:00:00Z", "1985-01-01"),
        ("1984-12-31T23:59:59+08:00", "1985-01-01"),
        ("9999-12-30T00:00:00+08:00", "now is"),  # computable, and in the future: the domain's refusal
    ],
)
async def test_certified_at_out_of_any_range_is_422_not_500(registry, certified_at, bound):
    point = await registry.point("6401")
    contract_id = (await registry.submit(point))["id"]
    head = await registry.head()
    r = await registry.client.post(
        f"/v1/contracts/{contract_id}/certify",
        json={"certified_at": certified_at, "expert_review_ref": "ZJ"},
        headers=point.headers,
    )
    [error] = [e for e in assert_problem(r, 422, "certified_at")["errors"] if e["field"] == "certified_at"]
    assert bound in error["message"], error
    assert await registry.head() == head
    contract = (await registry.client.get(f"/v1/contracts/{contract_id}", headers=point.headers)).json()
    assert (contract["status"], contract["registration_number"]) == ("submitted", None)


async def test_list_filters_refuse_text_no_store_can_hold(registry):
    point = await registry.point("6401")
    for field in ("seller", "buyer"):
        r = await registry.client.get("/v1/contracts", params={field: "9164\x00"}, headers=point.headers)
        assert_problem(r, 422, field)


async def test_odd_tokens_and_positions_are_4xx_problems(registry):
    """The probe's other 500s, through the registry: a non-ASCII key, a page token of 27 digits, a feed position
    beyond BIGINT."""
    import base64

    point = await registry.point("6401")
    r = await registry.client.get("/v1/contracts", headers={"Authorization": "Bearer ключ".encode()})
    assert_problem(r, 401)
    token = base64.urlsafe_b64encode(b"p:" + b"9" * 27).decode().rstrip("=")
    assert_problem(await registry.client.get("/v1/contracts", params={"page_token": token}, headers=point.headers), 422)
    r = await registry.client.get("/v1/events", params={"after": 2**63}, headers=ADMIN)
    assert 400 <= r.status_code < 500 and r.headers["content-type"].startswith("application/problem+json"), r.text
