"""Every store accepts whatever the registry accepts (issue 11): random text, typed by hypothesis into names,
titles, result ids and reasons, is either refused by the registry with a 422 naming the field, or it flows through
the registry, the subsidy service and the reporting service, all three on PostgreSQL (which refuses U+0000: a NUL
that got past the registry once stopped the subsidy follower for good), and every follower keeps up without error.
"""

from __future__ import annotations

import time

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.support import postgres
from tests.support.processes import start_service
from tests.support.registry import contract_body, party

ADMIN_KEY = "tcr_test_admin_key_for_text_e2e"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
TEXT_FIELDS = {"title", "seller.name", "buyer.name", "result_id", "reason", "changes.title"}


@pytest.fixture(scope="module")
def services(postgres_server, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("text-e2e")
    urls = [postgres.create_database(f"tcr_text_{name}") for name in ("registry", "subsidy", "reporting")]
    common = {"TCR_ADMIN_KEY": ADMIN_KEY, "TCR_DATA_DIR": str(tmp), "TCR_DEMO": "0", "TCR_ACCESS_LOG": "0"}
    started = []
    try:
        registry = start_service(
            "registry",
            "tcr_registry.bootstrap:create_app",
            {**common, "TCR_REGISTRY_DATABASE_URL": urls[0]},
            tmp / "logs",
        )
        started.append(registry)
        subsidy_env = {**common, "TCR_SUBSIDY_DATABASE_URL": urls[1], "TCR_REGISTRY_URL": registry.url}
        subsidy = start_service("subsidy", "tcr_subsidy.bootstrap:create_app", subsidy_env, tmp / "logs")
        started.append(subsidy)
        reporting_env = {
            **common,
            "TCR_REPORTING_DATABASE_URL": urls[2],
            "TCR_REGISTRY_URL": registry.url,
            "TCR_SUBSIDY_URL": subsidy.url,
        }
        reporting = start_service("reporting", "tcr_reporting.bootstrap:create_app", reporting_env, tmp / "logs")
        started.append(reporting)
        yield registry, subsidy, reporting
    finally:
        for service in reversed(started):
            service.kill()
        for url in urls:
            postgres.drop_database(url)


def _point(client: httpx.Client) -> dict[str, str]:
    point = client.post(
        "/v1/points", json={"number": "01", "name": "宁夏技术市场", "jurisdiction": "6400"}, headers=ADMIN
    )
    assert point.status_code == 201, point.text
    key = client.post("/v1/api-keys", json={"role": "point", "point_id": point.json()["id"]}, headers=ADMIN)
    return {"Authorization": f"Bearer {key.json()['secret']}"}


def _refused_for_its_text(response: httpx.Response) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert {e["field"] for e in response.json()["errors"]} & TEXT_FIELDS, response.text


def test_random_text_is_refused_at_the_edge_or_accepted_by_every_store(services):
    registry, subsidy, reporting = services
    client = httpx.Client(base_url=registry.url, timeout=30)
    point = _point(client)
    accepted: list[str] = []
    position = 0

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(text=st.text(min_size=1, max_size=24))
    @example(text="\x00")
    @example(text="\u202etxt.exe")
    @example(text="e\u0301")
    @example(text="枸杞\u200b多糖")
    @example(text="😀 ﷽ 𠀀")
    @example(text="a\tb\nc")
    def one_contract(text: str) -> None:
        nonlocal position
        body = contract_body(
            title=f"合同{text}",
            amount="900000.00",
            technology_amount="800000.00",
            result_id=f"ZL{text}",
            seller=party("university", "640104", name=text),
            buyer=party("enterprise", "640181", name=f"{text}公司"),
        )
        submitted = client.post("/v1/contracts", json=body, headers=point)
        if submitted.status_code != 201:
            _refused_for_its_text(submitted)
            return
        url = f"/v1/contracts/{submitted.json()['id']}"
        certified = client.post(f"{url}/certify", json={}, headers=point)
        assert certified.status_code == 200, certified.text
        amended = client.post(f"{url}/amend", json={"reason": text, "changes": {"title": f"{text}更正"}}, headers=point)
        if amended.status_code == 200:
            position = max(position, int(amended.headers["TCR-Position"]))
        else:
            _refused_for_its_text(amended)
            position = max(position, int(certified.headers["TCR-Position"]))
        accepted.append(submitted.json()["id"])

    one_contract()
    assert accepted, "hypothesis found no text the registry accepts"

    with httpx.Client(base_url=subsidy.url, timeout=30, headers=ADMIN) as s:
        for contract_id in accepted:
            r = s.get(f"/v1/contracts/{contract_id}/awards", params={"min_position": position})
            assert r.status_code == 200, r.text
            assert r.json()["awards"], r.text
        subsidy_head = s.get("/v1/events", params={"after": 0, "limit": 1}).json()["head"]
    with httpx.Client(base_url=reporting.url, timeout=30, headers=ADMIN) as r:
        feeds = _wait_for_reporting(r, {"registry": position, "subsidy": subsidy_head})
    for name, feed in feeds.items():
        assert feed.get("error") is None and feed.get("last_error") is None, (name, feed)


def _wait_for_reporting(client: httpx.Client, positions: dict[str, int], timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        feeds = client.get("/v1/status").json()["feeds"]
        if all(feeds[name]["position"] >= position for name, position in positions.items()):
            return feeds
        assert time.monotonic() < deadline, f"reporting did not reach {positions}: {feeds}"
        time.sleep(0.1)
