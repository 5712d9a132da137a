"""Policy integrity in the registry (issue 10): one identity per party and per project whatever the spelling,
certification in number order, and county-level regions for parties in Ningxia. Every refusal goes through HTTP,
answers problem+json naming the field and its bound, and changes nothing."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from tcr_registry.domain.contract import Contract
from tcr_registry.domain.registration_book import RegistrationBook
from tests.support.asserts import assert_problem
from tests.support.registry import contract_body, credit_code, party


def _spellings(code: str) -> list[str]:
    """The same credit code as people type it: lower case, with hyphens, with spaces (and a full-width one)."""
    return [code.lower(), f"{code[:8]}-{code[8:]}", f" {code[:2]} {code[2:8]}\u3000{code[8:]}"]


def _with_letters(region: str = "640181") -> str:
    """A valid code with letters in it (MA...), so that case matters."""
    from tcr_shared.language.identifiers import credit_code_with_check_digit

    return credit_code_with_check_digit(f"91{region}MA{uuid.uuid4().int % 10**7:07d}")


# --- one identity per party and per project ------------------------------------------------------------------
async def test_credit_codes_and_result_ids_are_stored_and_published_canonical(registry):
    point = await registry.point("6401")
    code = _with_letters()
    head = await registry.head()
    ids = []
    for spelling in _spellings(code):
        buyer = {**party("enterprise", "640181"), "credit_code": spelling}
        body = contract_body(buyer=buyer, result_id="zl 2023-10077777.x")
        r = await registry.client.post("/v1/contracts", json=body, headers=point.headers)
        assert r.status_code == 201, r.text
        assert r.json()["buyer"]["credit_code"] == code
        assert r.json()["result_id"] == "ZL202310077777.X"
        ids.append(r.json()["id"])
    feed = await registry.feed(head)
    assert {e["data"]["terms"]["buyer"]["credit_code"] for e in feed} == {code}
    assert {e["data"]["terms"]["result_id"] for e in feed} == {"ZL202310077777.X"}
    # Any spelling finds all three in the list.
    await registry.index_caught_up()
    for spelling in (code, code.lower(), f"{code[:4]}-{code[4:]}"):
        listed = await registry.list(point.headers, buyer=spelling)
        assert [c["id"] for c in listed["contracts"]] == ids


async def test_seller_and_buyer_in_two_spellings_are_one_party(registry):
    point = await registry.point("6401")
    seller = {**party("enterprise", "640104"), "credit_code": _with_letters("640104")}
    head = await registry.head()
    for spelling in _spellings(seller["credit_code"]):
        buyer = {**party("enterprise", "640181"), "credit_code": spelling}
        r = await registry.client.post(
            "/v1/contracts", json=contract_body(seller=seller, buyer=buyer), headers=point.headers
        )
        problem = assert_problem(r, 422, "seller.credit_code")
        assert {e["field"] for e in problem["errors"]} == {"seller.credit_code", "buyer.credit_code"}
        assert seller["credit_code"] in problem["errors"][0]["message"]
        intermediary = {**party("enterprise", "640106"), "credit_code": spelling}
        r = await registry.client.post(
            "/v1/contracts", json=contract_body(seller=seller, intermediary=intermediary), headers=point.headers
        )
        problem = assert_problem(r, 422, "intermediary.credit_code")
        assert {e["field"] for e in problem["errors"]} == {"seller.credit_code", "intermediary.credit_code"}
    assert await registry.head() == head


async def test_events_stored_before_the_rule_keep_their_bytes_and_read_canonical(registry):
    """A contract stored with a lower-case code and a spaced result id (as before the rule): the stored event is
    untouched, but the API, the history and the feed (hence subsidy and reporting) see the canonical form."""
    point = await registry.point("6401")
    code = _with_letters()
    body = contract_body(buyer={**party("enterprise", "640181"), "credit_code": code}, result_id="zl 2021 0012.3")
    record = {**body, "buyer": {**body["buyer"], "credit_code": code.lower(), "country": None, "id_number": None}}
    record["seller"] = {**record["seller"], "country": None, "id_number": None}
    contract = Contract._create(
        Contract.Submitted,
        id=uuid.uuid4(),
        point_id=point.id,
        terms=record,
        submitted_at=datetime(2025, 3, 2, tzinfo=UTC).isoformat(),
    )
    app = registry.runtime.app
    head = await registry.head()
    app.save(contract)
    registry.runtime.signal.ring()

    url = f"/v1/contracts/{contract.id}"
    got = (await registry.client.get(url, headers=point.headers)).json()
    assert (got["buyer"]["credit_code"], got["result_id"]) == (code, "ZL20210012.3")
    certified = await registry.act(
        point, str(contract.id), "certify", {"certified_at": "2025-03-05T10:00:00+08:00", "expert_review_ref": "ZJ"}
    )
    assert certified.json()["buyer"]["credit_code"] == code
    history = (await registry.client.get(f"{url}/history", headers=point.headers)).json()["events"]
    assert {e["data"]["terms"]["buyer"]["credit_code"] for e in history} == {code}
    feed = [e for e in await registry.feed(head) if e["subject"] == str(contract.id)]
    assert [e["type"].split(".")[-2] for e in feed] == ["submitted", "certified"]
    assert {e["data"]["terms"]["buyer"]["credit_code"] for e in feed} == {code}
    assert {e["data"]["terms"]["result_id"] for e in feed} == {"ZL20210012.3"}
    [stored, _] = app.recorder.select_events(contract.id)
    state = json.loads(stored.state)
    assert state["terms"]["buyer"]["credit_code"] == code.lower()  # the fact as it was recorded
    assert state["terms"]["result_id"] == "zl 2021 0012.3"


# --- certification in number order -----------------------------------------------------------------------------
async def _submitted(registry, point, signed_on: str = "2025-03-01") -> str:
    return (await registry.submit(point, signed_on=signed_on))["id"]


async def _certify(registry, point, contract_id: str, certified_at: str):
    return await registry.client.post(
        f"/v1/contracts/{contract_id}/certify",
        json={"certified_at": certified_at, "expert_review_ref": "ZJPS-1"},
        headers=point.headers,
    )


async def test_certified_at_is_refused_in_the_future_before_signing_and_behind_a_number(registry):
    point = await registry.point("6401")
    first, late, early, future = [await _submitted(registry, point) for _ in range(4)]
    assert (await _certify(registry, point, first, "2025-06-10T10:00:00+08:00")).status_code == 200
    head = await registry.head()

    behind = assert_problem(await _certify(registry, point, late, "2025-06-10T09:59:59+08:00"), 422, "certified_at")
    message = behind["errors"][0]["message"]
    assert "2025-06-10T10:00:00+08:00" in message and f"20256401{point.number}000001" in message
    before_signing = assert_problem(await _certify(registry, point, early, "2025-02-28T23:00:00+08:00"), 422)
    assert (
        before_signing["errors"][0]["field"] == "certified_at"
        and "2025-03-01" in before_signing["errors"][0]["message"]
    )
    in_future = assert_problem(await _certify(registry, point, future, "2099-01-01T00:00:00+08:00"), 422)
    assert in_future["errors"][0]["field"] == "certified_at" and "now is" in in_future["errors"][0]["message"]
    assert await registry.head() == head  # no number consumed, nothing written

    # The same instant as the last number, and anything later, are in order.
    same = await _certify(registry, point, late, "2025-06-10T02:00:00+00:00")
    assert same.status_code == 200 and same.json()["registration_number"].endswith("000002")
    later = await _certify(registry, point, early, "2025-07-01T09:00:00+08:00")
    assert later.json()["registration_number"].endswith("000003")
    # Another year has its own book and its own bound: history of 2024 may still be recorded in order.
    older_year = await _certify(registry, point, future, "2024-12-31T10:00:00+08:00")
    assert older_year.status_code == 422  # signed 2025-03-01: before signing, whatever the book says
    for signed_on, at in (("2024-01-02", "2024-03-01T10:00:00+08:00"), ("2024-01-02", "2024-03-02T10:00:00+08:00")):
        r = await _certify(registry, point, await _submitted(registry, point, signed_on), at)
        assert r.status_code == 200 and r.json()["policy_year"] == 2024


async def test_history_loaded_in_order_is_numbered_in_order(registry):
    point = await registry.point("6400")
    times = [f"2025-{month:02d}-15T10:00:00+08:00" for month in range(3, 13)]
    numbers = []
    for at in times:
        r = await _certify(registry, point, await _submitted(registry, point), at)
        assert r.status_code == 200, r.text
        numbers.append(r.json()["registration_number"])
    assert numbers == [f"20256400{point.number}{n:06d}" for n in range(1, 11)]


async def test_a_book_numbered_before_the_rule_loads_and_learns_its_bound(registry):
    """NumberIssued v1 events (no certified_at) still load: the book knows no bound until its next number."""
    point = await registry.point("6400")
    app = registry.runtime.app
    book = RegistrationBook.open(point.id, f"6400{point.number}", 2025)
    book.issue(str(uuid.uuid4()), datetime(2025, 8, 1, tzinfo=UTC))
    opened, issued = (app.mapper.to_stored_event(e) for e in book.collect_events())
    state = json.loads(issued.state)
    del state["certified_at"], state["class_version"]  # as version 1 stored it
    issued = type(issued)(issued.originator_id, issued.originator_version, issued.topic, json.dumps(state).encode())
    app.recorder.insert_events([opened, issued])
    registry.runtime.signal.ring()
    assert app.repository.get(book.id).last_certified_at is None

    r = await _certify(registry, point, await _submitted(registry, point), "2025-04-01T10:00:00+08:00")
    assert r.status_code == 200 and r.json()["registration_number"] == f"20256400{point.number}000002"
    behind = await _certify(registry, point, await _submitted(registry, point), "2025-03-31T10:00:00+08:00")
    assert "2025-04-01T10:00:00+08:00" in assert_problem(behind, 422, "certified_at")["errors"][0]["message"]


# --- county-level regions ----------------------------------------------------------------------------------------
async def test_a_ningxia_party_needs_a_county_level_code(registry):
    point = await registry.point("6400")
    head = await registry.head()
    yinchuan = "640104 兴庆区, 640105 西夏区, 640106 金凤区, 640121 永宁县, 640122 贺兰县, 640181 灵武市"
    for role, region, listed, absent in (
        ("buyer", "640100", yinchuan, "640202"),
        ("seller", "640500", "640502 沙坡头区, 640521 中宁县, 640522 海原县", "640104"),
        ("buyer", "640000", "640104 兴庆区", None),
    ):
        body = contract_body(**{role: {**party("enterprise", "640104"), "region": region}})
        problem = assert_problem(await registry.client.post("/v1/contracts", json=body, headers=point.headers), 422)
        [error] = [e for e in problem["errors"] if e["field"] == f"{role}.region"]
        assert listed in error["message"], error
        if absent:
            assert absent not in error["message"]
    ningxia_wide = [e for e in problem["errors"] if e["field"] == "buyer.region"][0]["message"]
    assert all(code in ningxia_wide for code in ("640104", "640205", "640302", "640402", "640522"))
    assert await registry.head() == head

    # Out of province, the province prefix is still all that is checked; an amendment obeys the same rule.
    contract = await registry.submit(point, buyer=party("enterprise", "110108"))
    r = await registry.client.post(
        f"/v1/contracts/{contract['id']}/amend",
        json={"reason": "moved", "changes": {"seller": {"region": "640100"}}},
        headers=point.headers,
    )
    assert "640181 灵武市" in assert_problem(r, 422, "seller.region")["errors"][0]["message"]
    assert (await registry.client.get(f"/v1/contracts/{contract['id']}", headers=point.headers)).json()["version"] == 1


async def test_codes_spelled_apart_share_one_credit_code_check(registry):
    """A wrong check digit stays wrong in every spelling (canonicalising never repairs a code)."""
    point = await registry.point("6401")
    good = credit_code("640181")
    wrong = good[:-1] + ("0" if good[-1] != "0" else "1")
    for spelling in (wrong.lower(), f"{wrong[:6]}-{wrong[6:]}"):
        body = contract_body(buyer={**party("enterprise", "640181"), "credit_code": spelling})
        assert_problem(
            await registry.client.post("/v1/contracts", json=body, headers=point.headers), 422, "buyer.credit_code"
        )


def test_one_canonical_form_per_code_and_result_id():
    from tcr_shared.language.identifiers import canonical_credit_code, canonical_result_id

    for spelling in ("91640181ma7f3k2q1q", "9164-0181-MA7F3K2Q1Q", " 91640181 MA7F3K2Q1Q ", "91640181\u3000ma7f3k2q1q"):
        assert canonical_credit_code(spelling) == "91640181MA7F3K2Q1Q"
    assert canonical_result_id("zl 202310077777.x") == canonical_result_id("ZL202310077777.X") == "ZL202310077777.X"
    assert canonical_result_id("ZL2023-10077777.X") == "ZL202310077777.X"
    assert canonical_credit_code("91640181MA7F3K2Q1Q") == "91640181MA7F3K2Q1Q"  # idempotent


def test_terms_are_canonical_however_they_are_built():
    """Not only requests and stored records: any Party or Terms (an import row, demo data) holds canonical values,
    so that identity is judged on one spelling."""
    from tests.registry.memory import organisation, terms

    code = _with_letters("640104")
    seller = type(organisation())(name="宁夏大学", kind="university", credit_code=f" {code[:9]}-{code[9:].lower()}")
    assert seller.credit_code == code
    built = terms(seller=seller, result_id="zl 2021-0012.3")
    assert built.result_id == "ZL20210012.3"
    assert terms(result_id="").result_id is None
