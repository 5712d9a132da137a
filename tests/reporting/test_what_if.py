"""`POST /v1/what-if` passes a candidate rule set to the subsidy service's `POST /v1/simulations` with the caller's
own key (Bearer or the dashboard's cookie) and passes the answer back unchanged; the /what-if page shows the rule
set in force as editable numbers. The subsidy service is the fake of tests/reporting/fake_subsidy.py (its what-if
API is being built elsewhere), reached in-process through httpx's ASGI transport."""

from __future__ import annotations

import asyncio
import copy
import json

import httpx
import pytest

from tcr_reporting.adapters.persistence.migrate import upgrade
from tcr_reporting.adapters.subsidy_gateway import SubsidyGateway
from tcr_shared.platform.database import Database
from tests.reporting.fake_subsidy import IN_FORCE, FakeSubsidy, simulate
from tests.reporting.test_metrics_route import ADMIN, make_app

PROBLEM = "application/problem+json"


@pytest.fixture
async def what_if(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'reporting.db'}"
    await asyncio.to_thread(upgrade, Database(url))
    app = make_app(url, tmp_path, monkeypatch, query_cache=True)
    fake = FakeSubsidy()
    subsidy = httpx.AsyncClient(transport=httpx.ASGITransport(app=fake.app()))
    app.state.runtime.subsidy = SubsidyGateway("http://subsidy.test", client=subsidy)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        yield client, fake, app
    await subsidy.aclose()
    await app.state.runtime.engine.dispose()


def candidate(**changes) -> dict:
    rules = copy.deepcopy(IN_FORCE)
    for programme in rules["programmes"]:
        programme.update(changes.get(programme["programme"], {}))
    return {"rules": rules, "from_year": 2021, "to_year": 2025}


async def test_the_candidate_goes_to_the_subsidy_service_with_the_callers_key(what_if) -> None:
    client, fake, _app = what_if
    body = candidate(**{"import": {"rate": "0.20", "cap": "3000000.00"}})
    response = await client.post("/v1/what-if", json=body, headers={"Authorization": "Bearer analyst-key"})
    assert response.status_code == 201, response.text
    assert response.json()["result"] == simulate(body["rules"], 2021, 2025)
    assert response.headers["location"] == f"/v1/what-if/{response.json()['id']}"  # same origin
    sent = fake.requests[-1]
    assert (sent["method"], sent["path"], sent["auth"], sent["body"]) == (
        "POST",
        "/v1/simulations",
        "Bearer analyst-key",
        body,
    )
    import_2025 = next(
        r for r in response.json()["result"]["totals"] if (r["policy_year"], r["programme"]) == (2025, "import")
    )
    # 6,750,000.00 in force; at 20%: 4,500,000.00, under the 3,000,000.00 cap per award
    assert (import_2025["in_force"], import_2025["candidate"], import_2025["difference"]) == (
        "6750000.00",
        "4500000.00",
        "-2250000.00",
    )

    # the dashboard's fetch carries no header: the signed-in cookie's key goes on
    signed = await client.post("/login", data={"key": ADMIN, "next": "/what-if"})
    assert signed.status_code == 303
    response = await client.post("/v1/what-if", json=body)
    assert response.status_code == 201 and fake.requests[-1]["auth"] == f"Bearer {ADMIN}"


async def test_refusals_are_problems_and_the_subsidy_services_own_pass_through(what_if) -> None:
    client, fake, _app = what_if
    body = candidate()
    unsigned = await client.post("/v1/what-if", json=body)
    assert unsigned.status_code == 401 and unsigned.headers["content-type"] == PROBLEM
    other_role = await client.post("/v1/what-if", json=body, headers={"Authorization": "Bearer point-key"})
    assert other_role.status_code == 403 and other_role.headers["content-type"] == PROBLEM
    analyst = {"Authorization": "Bearer analyst-key"}
    not_json = await client.post(
        "/v1/what-if", content=b"{rules", headers={**analyst, "Content-Type": "application/json"}
    )
    assert not_json.status_code == 400 and not_json.headers["content-type"] == PROBLEM
    no_rules = await client.post("/v1/what-if", json={"from_year": 2021}, headers=analyst)
    assert no_rules.status_code == 422 and no_rules.json()["errors"] == [{"field": "rules", "message": "required"}]
    assert fake.requests == []  # none of these reached the subsidy service

    too_high = await client.post("/v1/what-if", json=candidate(brokerage={"rate": "1.5"}), headers=analyst)
    assert too_high.status_code == 422 and too_high.headers["content-type"] == PROBLEM
    assert too_high.json()["errors"] == [
        {"field": "rules.programmes[3].rate", "message": "rules: programmes[3].rate must not exceed 1"}
    ]


async def test_a_long_simulation_is_a_job_polled_through_the_same_origin(what_if) -> None:
    client, fake, _app = what_if
    analyst = {"Authorization": "Bearer analyst-key"}
    started = await client.post("/v1/what-if", json={**candidate(), "to_year": 2099}, headers=analyst)
    assert started.status_code == 202
    assert started.json()["status"] == "running" and started.json()["progress"]["total"] > 0
    location = started.headers["location"]
    assert location == f"/v1/what-if/{started.json()['id']}"
    polls = [await client.get(location, headers=analyst) for _ in range(3)]
    assert [p.status_code for p in polls] == [200, 200, 200]
    assert [p.json()["status"] for p in polls] == ["running", "running", "done"]
    assert polls[0].json()["progress"]["done"] < polls[1].json()["progress"]["done"]  # passed through as it came
    result = polls[-1]
    assert result.json()["result"]["totals"]
    assert fake.requests[-1]["path"] == f"/v1/simulations/{started.json()['id']}"
    assert fake.requests[-1]["auth"] == "Bearer analyst-key"


async def test_an_unreachable_subsidy_service_is_a_503_with_retry_after(what_if) -> None:
    client, _fake, app = what_if
    app.state.runtime.subsidy = SubsidyGateway("http://127.0.0.1:9")
    response = await client.post("/v1/what-if", json=candidate(), headers={"Authorization": "Bearer analyst-key"})
    assert response.status_code == 503 and response.headers["content-type"] == PROBLEM
    assert response.headers["retry-after"] == "5" and "cannot be reached" in response.json()["detail"]
    await client.post("/login", data={"key": "analyst-key", "next": "/what-if"})
    page = await client.get("/what-if")
    assert page.status_code == 200 and 'id="whatif-unavailable"' in page.text and "cannot be reached" in page.text
    await app.state.runtime.subsidy.aclose()


async def test_the_page_shows_the_rule_set_in_force_as_editable_numbers(what_if) -> None:
    client, fake, _app = what_if
    assert (await client.get("/what-if")).headers["location"] == "/login?next=/what-if"
    await client.post("/login", data={"key": "analyst-key", "next": "/what-if"})
    page = await client.get("/what-if")
    assert page.status_code == 200
    assert fake.requests[-1]["path"] == "/v1/programmes" and fake.requests[-1]["auth"] == "Bearer analyst-key"
    html = page.text
    assert 'name="rate-import" value="0.30"' in html and 'name="cap-import" value="5000000.00"' in html
    assert 'name="kinds-export_institution" value="university" checked' in html
    assert 'name="kinds-export_institution" value="public_institution">' in html  # editable: not checked yet
    assert 'name="category" value="licence" checked' in html and 'name="category" value="service">' in html
    start = html.index('id="whatif-rules">') + len('id="whatif-rules">')
    assert json.loads(html[start : html.index("</script>", start)]) == IN_FORCE  # posted back as fetched
    assert "data-version-url" not in html  # a what-if page does not follow the projection
