"""Every write and read endpoint of /v1/contracts, on SQLite and PostgreSQL: what a registration point does to
a contract, and what each answer carries (status, Location, ETag, TCR-Position, the contract's state)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from stdnum.cn import ric

from tests.support.asserts import assert_problem
from tests.support.registry import ADMIN, contract_body, party


def id_number(serial: int) -> str:
    first17 = f"11010519800101{serial:03d}"
    return first17 + ric.calc_check_digit(first17 + "0")


def individual(region: str = "640104", serial: int = 123) -> dict:
    return {"name": "张三", "kind": "individual", "region": region, "id_number": id_number(serial)}


async def test_submit_answers_201_with_location_etag_position(registry):
    point = await registry.point("6401")
    head = await registry.head()
    body = contract_body()
    r = await registry.client.post("/v1/contracts", json=body, headers=point.headers)
    assert r.status_code == 201, r.text
    contract = r.json()
    assert r.headers["Location"] == f"/v1/contracts/{contract['id']}"
    assert r.headers["ETag"] == '"1"'
    position = int(r.headers["TCR-Position"])
    assert position == head + 1 == await registry.head()
    assert contract["status"] == "submitted" and contract["version"] == 1
    assert contract["point_id"] == point.id and contract["registration_number"] is None
    for key in ("title", "category", "subcategory", "signed_on", "amount", "technology_amount", "result_id"):
        assert contract[key] == body[key]
    assert contract["seller"]["credit_code"] == body["seller"]["credit_code"]

    r = await registry.client.get(r.headers["Location"], headers=point.headers)
    assert r.status_code == 200 and r.headers["ETag"] == '"1"'
    assert r.json()["id"] == contract["id"]
    events = await registry.feed(head)
    assert [(e["position"], e["type"], e["subject"]) for e in events] == [
        (position, "tcr.registry.contract.submitted.v1", contract["id"])
    ]


async def test_certify_issues_a_16_digit_number_and_checks_the_date(registry):
    point = await registry.point("6402")
    contract = await registry.submit(
        point,
        seller=party("enterprise", "640205"),
        amount="300000.00",
        technology_amount="250000.00",
        signed_on="2025-06-01",
    )
    url = f"/v1/contracts/{contract['id']}/certify"
    before = datetime.now(UTC)
    future = (before + timedelta(hours=1)).isoformat()
    assert_problem(
        await registry.client.post(url, json={"certified_at": future}, headers=point.headers), 422, "certified_at"
    )
    assert_problem(
        await registry.client.post(url, json={"certified_at": "2025-05-31T23:59:00+08:00"}, headers=point.headers),
        422,
        "certified_at",
    )
    # An offset is required (RFC 3339): a naive time is refused.
    assert_problem(
        await registry.client.post(url, json={"certified_at": "2025-06-05T10:00:00"}, headers=point.headers),
        422,
        "certified_at",
    )
    head = await registry.head()
    r = await registry.client.post(url, json={}, headers=point.headers)  # certified_at defaults to now
    after = datetime.now(UTC)
    assert r.status_code == 200, r.text
    certified = r.json()
    number = certified["registration_number"]
    year = before.astimezone(timezone(timedelta(hours=8))).year
    assert len(number) == 16 and number.isdigit()
    assert number == f"{year}6402{point.number}000001"
    assert before <= datetime.fromisoformat(certified["certified_at"]) <= after
    assert certified["status"] == "certified" and certified["version"] == 2 and certified["policy_year"] == year
    assert r.headers["ETag"] == '"2"' and int(r.headers["TCR-Position"]) == await registry.head() > head
    [event] = [e for e in await registry.feed(head) if e["subject"] == contract["id"]]
    assert event["type"] == "tcr.registry.contract.certified.v1"
    assert event["data"]["registration_number"] == number and event["data"]["status"] == "certified"


async def test_certify_on_the_signing_day_is_allowed(registry):
    point = await registry.point("6401")
    contract = await registry.submit(point, signed_on="2025-06-01", amount="100.00", technology_amount="100.00")
    r = await registry.client.post(
        f"/v1/contracts/{contract['id']}/certify",
        json={"certified_at": "2025-06-01T00:00:00+08:00"},
        headers=point.headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["registration_number"] == f"20256401{point.number}000001"


async def test_expert_review_is_required_from_five_million(registry):
    point = await registry.point("6401")
    at = {"certified_at": "2025-04-01T09:00:00+08:00"}
    exactly = await registry.submit(point, amount="6000000.00", technology_amount="5000000.00")
    url = f"/v1/contracts/{exactly['id']}/certify"
    head = await registry.head()
    assert_problem(await registry.client.post(url, json=at, headers=point.headers), 422, "expert_review_ref")
    assert await registry.head() == head
    r = await registry.client.post(url, json={**at, "expert_review_ref": "ZJPS-2025-017"}, headers=point.headers)
    assert r.status_code == 200, r.text
    assert r.json()["expert_review_ref"] == "ZJPS-2025-017"
    assert r.json()["registration_number"].endswith("000001")  # the refused attempt consumed no number

    below = await registry.submit(point, amount="6000000.00", technology_amount="4999999.99")
    r = await registry.client.post(f"/v1/contracts/{below['id']}/certify", json=at, headers=point.headers)
    assert r.status_code == 200, r.text
    assert r.json()["expert_review_ref"] is None and r.json()["registration_number"].endswith("000002")


async def test_certify_with_technology_amount_verified_by_the_point(registry):
    point = await registry.point("6401")
    contract = await registry.submit(point, amount="9000000.00", technology_amount="8000000.00")
    url = f"/v1/contracts/{contract['id']}/certify"
    at = "2025-04-01T09:00:00+08:00"
    # The point's figure must still respect the rules: not above amount, above zero, money as a string.
    for bad in ("9000000.01", "0.00", 4000000, "4000000.001"):
        assert_problem(
            await registry.client.post(url, json={"certified_at": at, "technology_amount": bad}, headers=point.headers),
            422,
            "technology_amount",
        )
    # Lowered below the threshold, no expert review is needed any more.
    r = await registry.client.post(
        url, json={"certified_at": at, "technology_amount": "4000000.00"}, headers=point.headers
    )
    assert r.status_code == 200, r.text
    assert r.json()["technology_amount"] == "4000000.00" and r.json()["amount"] == "9000000.00"
    events = [e for e in await registry.feed() if e["subject"] == contract["id"]]
    assert events[-1]["data"]["terms"]["technology_amount"] == "4000000.00"


async def test_raising_technology_amount_at_certification_needs_expert_review(registry):
    point = await registry.point("6401")
    contract = await registry.submit(point, amount="9000000.00", technology_amount="100000.00")
    url = f"/v1/contracts/{contract['id']}/certify"
    body = {"certified_at": "2025-04-01T09:00:00+08:00", "technology_amount": "5500000.00"}
    assert_problem(await registry.client.post(url, json=body, headers=point.headers), 422, "expert_review_ref")
    r = await registry.client.post(url, json={**body, "expert_review_ref": "ZJ-9"}, headers=point.headers)
    assert r.status_code == 200 and r.json()["technology_amount"] == "5500000.00"


async def test_reject_and_withdraw(registry):
    point = await registry.point("6401")
    refused = await registry.submit(point)
    url = f"/v1/contracts/{refused['id']}/reject"
    assert_problem(await registry.client.post(url, json={"reason_code": "R03"}, headers=point.headers), 422, "reason")
    r = await registry.client.post(url, json={"reason_code": "R03", "reason": "不属于技术合同"}, headers=point.headers)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "rejected" and r.headers["ETag"] == '"2"' and "TCR-Position" in r.headers

    withdrawn = await registry.submit(point)
    r = await registry.client.post(f"/v1/contracts/{withdrawn['id']}/withdraw", headers=point.headers)  # no body
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "withdrawn"
    with_reason = await registry.submit(point)
    r = await registry.client.post(
        f"/v1/contracts/{with_reason['id']}/withdraw", json={"reason": "当事人撤回"}, headers=point.headers
    )
    assert r.status_code == 200 and r.json()["status"] == "withdrawn"

    feed = {e["subject"]: e for e in await registry.feed()}
    assert feed[refused["id"]]["type"] == "tcr.registry.contract.rejected.v1"
    assert feed[refused["id"]]["data"]["reason_code"] == "R03"
    assert feed[with_reason["id"]]["data"]["reason"] == "当事人撤回"


@pytest.mark.parametrize(
    "action, body",
    [
        ("certify", {"certified_at": "2025-04-01T09:00:00+08:00", "expert_review_ref": "Z"}),
        ("reject", {"reason_code": "R01", "reason": "x"}),
        ("withdraw", {}),
        ("revoke", {"reason": "x"}),
        ("amend", {"reason": "x", "changes": {"title": "新标题"}}),
    ],
)
async def test_forbidden_transitions_are_409_and_change_nothing(registry, action, body):
    point = await registry.point("6401")
    revoked = await registry.certified(point)
    r = await registry.client.post(
        f"/v1/contracts/{revoked['id']}/revoke", json={"reason": "虚假"}, headers=point.headers
    )
    assert r.status_code == 200
    rejected = await registry.submit(point)
    r = await registry.client.post(
        f"/v1/contracts/{rejected['id']}/reject", json={"reason_code": "R", "reason": "x"}, headers=point.headers
    )
    assert r.status_code == 200
    submitted = await registry.submit(point)
    certified = await registry.certified(point)
    forbidden = {
        "certify": [revoked, rejected, certified],
        "reject": [revoked, certified],
        "withdraw": [revoked, rejected, certified],
        "revoke": [submitted, rejected],
        "amend": [revoked, rejected],
    }[action]
    head = await registry.head()
    for contract in forbidden:
        assert_problem(
            await registry.client.post(f"/v1/contracts/{contract['id']}/{action}", json=body, headers=point.headers),
            409,
        )
    assert await registry.head() == head


async def test_amend_each_allowed_change(registry):
    point = await registry.point("6401")
    contract = await registry.certified(point, intermediary=party("public_institution", "640106"))
    url = f"/v1/contracts/{contract['id']}/amend"
    changes = [
        ({"amount": "9500000.00"}, ["amount"]),
        ({"technology_amount": "7000000.00"}, ["technology_amount"]),
        ({"title": "一种枸杞多糖提取技术独占许可合同"}, ["title"]),
        ({"subcategory": "patent_exclusive"}, ["subcategory"]),
        ({"seller": {"name": "宁夏大学（更名）"}}, ["seller.name"]),
        ({"buyer": {"region": "640121"}}, ["buyer.region"]),
        ({"seller": {"region": "640105"}}, ["seller.region"]),
        ({"intermediary": {"name": "宁夏技术市场服务中心"}}, ["intermediary.name"]),
        # across categories: a licence becomes a development contract, then a consulting one without subcategory
        ({"category": "development", "subcategory": "commissioned"}, ["category", "subcategory"]),
        ({"category": "consulting", "subcategory": None}, ["category", "subcategory"]),
    ]
    version = contract["version"]
    head = await registry.head()
    for change, _fields in changes:
        r = await registry.client.post(
            url, json={"reason": "补充协议", "changes": change}, headers={**point.headers, "If-Match": f'"{version}"'}
        )
        assert r.status_code == 200, (change, r.text)
        version += 1
        amended = r.json()
        assert amended["version"] == version and r.headers["ETag"] == f'"{version}"'
        assert amended["status"] == "certified"
        assert amended["registration_number"] == contract["registration_number"]
        for key, value in change.items():
            if isinstance(value, dict):
                for k, v in value.items():
                    assert amended[key][k] == v
            else:
                assert amended[key] == value
    events = [e for e in await registry.feed(head) if e["subject"] == contract["id"]]
    assert [e["data"]["changed_fields"] for e in events] == [fields for _, fields in changes]
    assert all(e["type"] == "tcr.registry.contract.amended.v1" for e in events)
    assert events[0]["data"]["previous_terms"]["amount"] == "9000000.00"
    assert events[0]["data"]["terms"]["amount"] == "9500000.00"
    assert events[-1]["data"]["terms"]["category"] == "consulting"
    assert events[-1]["data"]["terms"]["subcategory"] is None
    assert events[-1]["data"]["registration_number"] == contract["registration_number"]


async def test_amend_refusals(registry):
    point = await registry.point("6401")
    contract = await registry.submit(point, amount="9000000.00", technology_amount="4000000.00")
    r = await registry.client.post(f"/v1/contracts/{contract['id']}/certify", json={}, headers=point.headers)
    assert r.status_code == 200 and r.json()["expert_review_ref"] is None
    url = f"/v1/contracts/{contract['id']}/amend"
    head = await registry.head()
    cases = [
        ({"reason": "x", "changes": {}}, "changes"),
        ({"reason": "x", "changes": {"title": None}}, "changes"),
        ({"reason": "x", "changes": {"amount": "9000000.00"}}, "changes"),  # changes nothing
        ({"reason": "x", "changes": {"amount": 9500000}}, "changes.amount"),
        ({"reason": "x", "changes": {"technology_amount": "9000000.01"}}, "technology_amount"),
        ({"reason": "x", "changes": {"category": "consulting"}}, "subcategory"),
        ({"reason": "x", "changes": {"category": "painting"}}, "category"),
        ({"reason": "x", "changes": {"seller": {"credit_code": "91640104MA7F3K2Q1Q"}}}, "changes.seller.credit_code"),
        ({"reason": "x", "changes": {"seller": {"region": "640199"}}}, "seller.region"),
        ({"reason": "x", "changes": {"intermediary": {"name": "中介"}}}, "changes.intermediary"),
        ({"changes": {"title": "新"}}, "reason"),
        # crossing the expert review threshold on a certified contract needs a reference
        ({"reason": "x", "changes": {"technology_amount": "5000000.00"}}, "expert_review_ref"),
    ]
    for body, field in cases:
        assert_problem(await registry.client.post(url, json=body, headers=point.headers), 422, field)
    assert await registry.head() == head
    r = await registry.client.post(
        url,
        json={"reason": "x", "changes": {"technology_amount": "5000000.00"}, "expert_review_ref": "ZJ-7"},
        headers=point.headers,
    )
    assert r.status_code == 200 and r.json()["expert_review_ref"] == "ZJ-7"


async def test_amend_across_regions_follows_jurisdiction(registry):
    yinchuan = await registry.point("6401")
    regional = await registry.point("6400")
    contract = await registry.certified(yinchuan)
    url = f"/v1/contracts/{contract['id']}/amend"
    head = await registry.head()
    # A Yinchuan point cannot move the seller out of its jurisdiction...
    assert_problem(
        await registry.client.post(
            url, json={"reason": "迁址", "changes": {"seller": {"region": "640205"}}}, headers=yinchuan.headers
        ),
        403,
    )
    assert await registry.head() == head
    # ...the regional point (6400) may, and afterwards the contract belongs to Shizuishan's jurisdiction.
    r = await registry.client.post(
        url, json={"reason": "迁址", "changes": {"seller": {"region": "640205"}}}, headers=regional.headers
    )
    assert r.status_code == 200, r.text
    assert r.json()["seller"]["region"] == "640205"
    # Another Yinchuan point no longer sees it; the point that registered it still reads its own record.
    other_yinchuan = await registry.point("6401")
    assert_problem(await registry.client.get(f"/v1/contracts/{contract['id']}", headers=other_yinchuan.headers), 403)
    assert (await registry.client.get(f"/v1/contracts/{contract['id']}", headers=yinchuan.headers)).status_code == 200
    shizuishan = await registry.point("6402")
    r = await registry.client.get(f"/v1/contracts/{contract['id']}", headers=shizuishan.headers)
    assert r.status_code == 200 and r.json()["seller"]["region"] == "640205"
    # A seller moved out of Ningxia: the buyer's region (640181, Yinchuan) decides again.
    r = await registry.client.post(
        url, json={"reason": "迁址", "changes": {"seller": {"region": "110108"}}}, headers=shizuishan.headers
    )
    assert_problem(r, 403)
    r = await registry.client.post(
        url, json={"reason": "迁址", "changes": {"seller": {"region": "110108"}}}, headers=regional.headers
    )
    assert r.status_code == 200, r.text
    r = await registry.client.get(f"/v1/contracts/{contract['id']}", headers=other_yinchuan.headers)
    assert r.status_code == 200 and r.json()["seller"]["region"] == "110108"


async def test_amend_a_submitted_contract(registry):
    point = await registry.point("6401")
    contract = await registry.submit(point)
    r = await registry.client.post(
        f"/v1/contracts/{contract['id']}/amend",
        json={"reason": "录入错误", "changes": {"amount": "9100000.00"}},
        headers=point.headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "submitted" and r.json()["amount"] == "9100000.00"
    [event] = [e for e in await registry.feed() if e["subject"] == contract["id"] and e["type"].endswith("amended.v1")]
    assert event["data"]["status"] == "submitted" and event["data"]["registration_number"] is None


async def test_revoke_keeps_what_it_revokes(registry):
    point = await registry.point("6401")
    contract = await registry.certified(point)
    url = f"/v1/contracts/{contract['id']}/revoke"
    assert_problem(await registry.client.post(url, json={}, headers=point.headers), 422, "reason")
    assert_problem(await registry.client.post(url, json={"reason": ""}, headers=point.headers), 422, "reason")
    r = await registry.client.post(url, json={"reason": "合同存在虚假内容"}, headers=point.headers)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "revoked" and r.json()["registration_number"] == contract["registration_number"]
    [event] = [e for e in await registry.feed() if e["subject"] == contract["id"] and e["type"].endswith("revoked.v1")]
    assert event["data"]["registration_number"] == contract["registration_number"]
    assert event["data"]["policy_year"] == 2025 and event["data"]["reason"] == "合同存在虚假内容"


async def test_history_lists_every_event_oldest_first(registry):
    point = await registry.point("6401")
    contract = await registry.certified(point)
    cid = contract["id"]
    await registry.client.post(
        f"/v1/contracts/{cid}/amend", json={"reason": "r", "changes": {"title": "新"}}, headers=point.headers
    )
    await registry.client.post(f"/v1/contracts/{cid}/revoke", json={"reason": "r"}, headers=point.headers)
    for headers in (point.headers, await registry.key("analyst"), ADMIN):
        r = await registry.client.get(f"/v1/contracts/{cid}/history", headers=headers)
        assert r.status_code == 200, r.text
        history = r.json()
        assert history["contract_id"] == cid
        assert [e["version"] for e in history["events"]] == [1, 2, 3, 4]
        assert [e["type"] for e in history["events"]] == [
            "tcr.registry.contract.submitted.v1",
            "tcr.registry.contract.certified.v1",
            "tcr.registry.contract.amended.v1",
            "tcr.registry.contract.revoked.v1",
        ]
        times = [e["time"] for e in history["events"]]
        assert times == sorted(times)
    feed_ids = [e["id"] for e in await registry.feed() if e["subject"] == cid]
    assert [e["id"] for e in history["events"]] == feed_ids


async def test_get_etag_and_if_match(registry):
    point = await registry.point("6401")
    contract = await registry.submit(point)
    url = f"/v1/contracts/{contract['id']}"
    r = await registry.client.get(url, headers=point.headers)
    assert r.headers["ETag"] == '"1"'
    head = await registry.head()
    stale = {**point.headers, "If-Match": '"7"'}
    body = assert_problem(
        await registry.client.post(f"{url}/certify", json={"expert_review_ref": "Z"}, headers=stale), 412
    )
    assert body["current_version"] == 1
    assert_problem(
        await registry.client.post(f"{url}/certify", json={}, headers={**point.headers, "If-Match": "*x"}), 412
    )
    assert await registry.head() == head
    r = await registry.client.post(
        f"{url}/certify", json={"expert_review_ref": "Z"}, headers={**point.headers, "If-Match": r.headers["ETag"]}
    )
    assert r.status_code == 200 and r.headers["ETag"] == '"2"'
    # The old ETag is now stale for every action.
    for action, body in (("amend", {"reason": "r", "changes": {"title": "t"}}), ("revoke", {"reason": "r"})):
        assert_problem(
            await registry.client.post(f"{url}/{action}", json=body, headers={**point.headers, "If-Match": '"1"'}), 412
        )
    assert (await registry.client.get(url, headers=point.headers)).headers["ETag"] == '"2"'
    # "*" matches whatever the current version is.
    r = await registry.client.post(
        f"{url}/amend",
        json={"reason": "r", "changes": {"title": "任意版本"}},
        headers={**point.headers, "If-Match": "*"},
    )
    assert r.status_code == 200 and r.headers["ETag"] == '"3"'


async def test_unknown_contract_is_404(registry):
    point = await registry.point("6401")
    analyst = await registry.key("analyst")
    for url in ("/v1/contracts/0b7a2a8e-2b7f-4c4e-9d51-3f1f5b7d8a11", "/v1/contracts/not-a-uuid"):
        assert_problem(await registry.client.get(url, headers=analyst), 404)
        assert_problem(await registry.client.get(f"{url}/history", headers=analyst), 404)
        for action, body in (
            ("certify", {}),
            ("reject", {"reason_code": "R", "reason": "r"}),
            ("withdraw", {}),
            ("amend", {"reason": "r", "changes": {"title": "t"}}),
            ("revoke", {"reason": "r"}),
        ):
            assert_problem(await registry.client.post(f"{url}/{action}", json=body, headers=point.headers), 404)


async def test_individuals_are_visible_to_points_only(registry):
    point = await registry.point("6401")
    person = individual(serial=321)
    contract = await registry.submit(
        point,
        seller=person,
        category="consulting",
        subcategory=None,
        amount="50000.00",
        technology_amount="50000.00",
        result_id=None,
    )
    assert contract["seller"]["name"] == "张三" and contract["seller"]["id_number"] == person["id_number"]
    cid = contract["id"]
    r = await registry.client.get(f"/v1/contracts/{cid}", headers=point.headers)
    assert r.json()["seller"]["name"] == "张三" and r.json()["seller"]["id_number"] == person["id_number"]
    r = await registry.client.get(f"/v1/contracts/{cid}", headers=ADMIN)
    assert r.json()["seller"]["id_number"] == person["id_number"]
    r = await registry.client.get(f"/v1/contracts/{cid}", headers=await registry.key("analyst"))
    assert r.status_code == 200
    assert r.json()["seller"]["name"] is None and "id_number" not in r.json()["seller"]
    assert person["id_number"] not in r.text and "张三" not in r.text
    r = await registry.client.get(f"/v1/contracts/{cid}/history", headers=await registry.key("analyst"))
    assert person["id_number"] not in r.text and "张三" not in r.text
    r = await registry.client.get(f"/v1/contracts/{cid}/history", headers=point.headers)
    assert person["id_number"] in r.text
    # The feed, read with a partner key as partners do, never carries them, in any event.
    await registry.client.post(f"/v1/contracts/{cid}/certify", json={}, headers=point.headers)
    await registry.client.post(
        f"/v1/contracts/{cid}/amend",
        json={"reason": "r", "changes": {"seller": {"name": "张三丰"}}},
        headers=point.headers,
    )
    r = await registry.client.get(
        "/v1/events", params={"after": 0, "limit": 1000}, headers=await registry.key("partner")
    )
    assert r.status_code == 200
    mine = [e for e in r.json()["events"] if e["subject"] == cid]
    assert len(mine) == 3
    assert person["id_number"] not in r.text and "张三" not in r.text
    for event in mine:
        assert event["data"]["terms"]["seller"] == {
            "name": None,
            "kind": "individual",
            "credit_code": None,
            "region": "640104",
            "country": None,
        }
