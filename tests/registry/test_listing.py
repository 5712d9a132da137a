"""GET /v1/contracts: a projection of the log (it follows asynchronously, so each test waits for it to catch
up), filtered by status, seller, buyer, region and year, paginated with page_token."""

from __future__ import annotations

from tests.support.asserts import assert_problem, wait_until
from tests.support.registry import ADMIN, party


async def _all_pages(registry, headers, **params) -> list[dict]:
    seen, token, pages = [], None, 0
    while True:
        query = dict(params, **({"page_token": token} if token else {}))
        page = await registry.list(headers, **query)
        seen += page["contracts"]
        pages += 1
        token = page["next_page_token"]
        if token is None:
            return seen
        assert pages < 100


async def test_list_filters_and_pages(registry):
    point = await registry.point("6400")  # regional: may register anywhere in Ningxia
    client = registry.client
    seller_a = party("university", "640104")
    buyer_b = party("enterprise", "640302")
    plans = {
        "sub_yinchuan": dict(seller=seller_a, buyer=party("enterprise", "640181")),
        "cert_2024_wuzhong": dict(seller=party("enterprise", "640302"), buyer=party("enterprise", "640303")),
        "cert_2025_guyuan": dict(seller=party("enterprise", "640402"), buyer=buyer_b),
        "rejected_zhongwei": dict(seller=party("enterprise", "640502"), buyer=party("enterprise", "640521")),
        "withdrawn_a": dict(seller=seller_a, buyer=party("enterprise", "640205")),
        "revoked_2025": dict(seller=party("enterprise", "640106"), buyer=buyer_b),
        "outside_seller": dict(seller=party("enterprise", "110108"), buyer=party("enterprise", "640422")),
    }
    ids = {}
    for name, overrides in plans.items():
        ids[name] = (await registry.submit(point, signed_on="2024-06-01", **overrides))["id"]

    async def act(name, action, body):
        r = await client.post(f"/v1/contracts/{ids[name]}/{action}", json=body, headers=point.headers)
        assert r.status_code == 200, r.text

    await act("cert_2024_wuzhong", "certify", {"certified_at": "2024-12-31T23:30:00+08:00", "expert_review_ref": "Z"})
    await act("cert_2025_guyuan", "certify", {"certified_at": "2025-01-01T00:10:00+08:00", "expert_review_ref": "Z"})
    await act("rejected_zhongwei", "reject", {"reason_code": "R1", "reason": "x"})
    await act("withdrawn_a", "withdraw", {})
    await act("revoked_2025", "certify", {"certified_at": "2025-05-01T10:00:00+08:00", "expert_review_ref": "Z"})
    await act("revoked_2025", "revoke", {"reason": "x"})
    await registry.index_caught_up()

    async def listed(**params) -> list[str]:
        return [c["id"] for c in await _all_pages(registry, point.headers, **params)]

    order = list(ids.values())  # oldest first = order of submission
    assert await listed() == order
    assert await listed(status="submitted") == [ids["sub_yinchuan"], ids["outside_seller"]]
    assert await listed(status="certified") == [ids["cert_2024_wuzhong"], ids["cert_2025_guyuan"]]
    assert await listed(status="rejected") == [ids["rejected_zhongwei"]]
    assert await listed(status="withdrawn") == [ids["withdrawn_a"]]
    assert await listed(status="revoked") == [ids["revoked_2025"]]
    assert await listed(seller=seller_a["credit_code"]) == [ids["sub_yinchuan"], ids["withdrawn_a"]]
    assert await listed(buyer=buyer_b["credit_code"]) == [ids["cert_2025_guyuan"], ids["revoked_2025"]]
    assert await listed(region="640302") == [
        ids["cert_2024_wuzhong"],
        ids["cert_2025_guyuan"],
        ids["revoked_2025"],
    ]  # either party
    assert await listed(region="640300") == [
        ids["cert_2024_wuzhong"],
        ids["cert_2025_guyuan"],
        ids["revoked_2025"],
    ]  # prefecture
    assert await listed(region="6403") == [ids["cert_2024_wuzhong"], ids["cert_2025_guyuan"], ids["revoked_2025"]]
    assert await listed(region="640500") == [ids["rejected_zhongwei"]]
    assert await listed(region="640000") == order
    assert await listed(region="110108") == [ids["outside_seller"]]
    # The year of a certified contract is its policy year (Asia/Shanghai): 2024-12-31 23:30 +08:00 is 2024.
    assert await listed(year=2024) == [ids["cert_2024_wuzhong"]]
    assert await listed(year=2025) == [ids["cert_2025_guyuan"], ids["revoked_2025"]]
    assert await listed(status="certified", year=2025, region="6404") == [ids["cert_2025_guyuan"]]

    # Pages of two: every contract once, in order, and the last page says there is no more.
    pages = []
    token = None
    while True:
        page = await registry.list(point.headers, limit=2, **({"page_token": token} if token else {}))
        pages.append([c["id"] for c in page["contracts"]])
        token = page["next_page_token"]
        if token is None:
            break
    assert pages == [order[0:2], order[2:4], order[4:6], order[6:7]]
    page = await registry.list(point.headers, limit=7)
    assert page["next_page_token"] is None

    # The summary is what the list shows.
    [summary] = [c for c in (await registry.list(point.headers, status="revoked"))["contracts"]]
    assert summary["status"] == "revoked" and summary["registration_number"].startswith(f"20256400{point.number}")
    assert summary["policy_year"] == 2025

    # Analysts see every point's contracts; a point only its own.
    other = await registry.point("6400")
    await registry.submit(other, seller=seller_a)
    await registry.index_caught_up()
    analyst = await registry.key("analyst")
    mine = await _all_pages(registry, point.headers, seller=seller_a["credit_code"])
    everyone = await _all_pages(registry, analyst, seller=seller_a["credit_code"])
    admin = await _all_pages(registry, ADMIN, seller=seller_a["credit_code"])
    assert len(mine) == 2 and len(everyone) == len(admin) == 3
    assert [c["id"] for c in await _all_pages(registry, other.headers)] == [everyone[-1]["id"]]


async def test_list_follows_amendments(registry):
    point = await registry.point("6400")
    contract = await registry.certified(point, certified_at="2025-03-02T10:00:00+08:00")
    await registry.index_caught_up()
    assert [c["id"] for c in (await registry.list(point.headers, region="640181"))["contracts"]] == [contract["id"]]
    r = await registry.client.post(
        f"/v1/contracts/{contract['id']}/amend",
        json={"reason": "r", "changes": {"buyer": {"region": "640522"}, "amount": "9100000.00"}},
        headers=point.headers,
    )
    assert r.status_code == 200, r.text

    async def moved():
        page = await registry.list(point.headers, region="640522")
        return page["contracts"]

    [summary] = await wait_until(moved, what="the list to show the amended region")
    assert summary["amount"] == "9100000.00" and summary["buyer"]["region"] == "640522"
    assert (await registry.list(point.headers, region="640181"))["contracts"] == []


async def test_list_refuses_bad_parameters(registry):
    analyst = await registry.key("analyst")
    for params, field in (
        ({"status": "lost"}, "query.status"),
        ({"region": "64"}, "query.region"),
        ({"year": "abc"}, "query.year"),
        ({"limit": "0"}, "query.limit"),
        ({"limit": "501"}, "query.limit"),
        ({"page_token": "bm9wZQ=="}, "page_token"),
        ({"page_token": "%%%"}, "page_token"),
    ):
        r = await registry.client.get("/v1/contracts", params=params, headers=analyst)
        assert_problem(r, 422, field)
