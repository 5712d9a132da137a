"""End to end: the registry and the subsidy service as real uvicorn processes, driven over their HTTP APIs,
on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import httpx
import pytest

from tests.subsidy.history import CST, code, party, terms
from tests.subsidy.stack import (
    ADMIN_KEY,
    Point,
    Subsidy,
    award_of,
    database_url,
    programme,
    start_registry,
    start_subsidy,
)
from tests.support import postgres

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(request, tmp_path_factory):
    if request.param == "postgresql":
        request.getfixturevalue("postgres_server")
    tmp = tmp_path_factory.mktemp(f"stack-{request.param}")
    urls = [database_url(request.param, tmp, name) for name in ("registry", "subsidy")]
    registry = start_registry(urls[0][0], tmp)
    subsidy = start_subsidy(urls[1][0], tmp, registry.url)
    yield {"registry": registry, "subsidy": subsidy, "tmp": tmp, "backend": request.param, "subsidy_db": urls[1][0]}
    subsidy.stop()
    registry.kill()  # a graceful stop waits up to 20 s for the subsidy's open long poll to time out
    for url, drop in urls:
        if drop:
            postgres.drop_database(url)


def day(d: int, month: int = 3, year: int = 2025, hour: int = 10) -> datetime:
    return datetime(year, month, d, hour, tzinfo=CST)


def test_worked_example_through_both_services(stack):
    point = Point.create(stack["registry"].url)
    subsidy = Subsidy(stack["subsidy"].url)
    a = party("enterprise", 501, region="640104")
    seller = party("enterprise", 502, region="320102")  # outside Ningxia: only the buyer benefits
    contracts = [
        point.certified(terms(amount=amount, technology_amount="1000000.00", buyer=a, seller=seller), day(d))
        for amount, d in (("9000000.00", 1), ("6000000.00", 2), ("2000000.00", 3))
    ]
    got = [award_of(subsidy.awards(c, point.last_position), "import") for c in contracts]
    assert [(x["entitlement"], x["award"], x["status"]) for x in got] == [
        ("2700000.00", "2700000.00", "full"),
        ("1800000.00", "1800000.00", "full"),
        ("600000.00", "500000.00", "capped"),
    ]
    assert got[2]["registration_number"].startswith("2025")
    assert "cap left 500000.00" in got[2]["explanation"] and "registry position" in got[2]["explanation"]
    point.revoke(contracts[1])
    fourth = point.certified(
        terms(amount="9000000.00", technology_amount="1000000.00", buyer=a, seller=seller), day(1, 5)
    )
    ledger = subsidy.ledger(a["credit_code"], 2025, point.last_position)
    imp = programme(ledger, "import")
    assert (imp["cap"], imp["awarded"], imp["remaining"]) == ("5000000.00", "5000000.00", "0.00")
    lines = {line["contract_id"]: line for line in imp["awards"]}
    assert (lines[contracts[1]]["award"], lines[contracts[1]]["status"]) == ("0.00", "clawed_back")
    assert lines[contracts[1]]["adjustments"][0]["delta"] == "-1800000.00"
    assert lines[contracts[2]]["award"] == "500000.00"
    assert (lines[fourth]["award"], lines[fourth]["status"]) == ("1800000.00", "capped")
    # 2026-01-01 00:30 in Shanghai is 2025-12-31 16:30 UTC: it counts in 2026
    late = point.certified(
        terms(amount="1000000.00", technology_amount="1000000.00", buyer=a, seller=seller),
        datetime(2025, 12, 31, 16, 30, tzinfo=UTC),
    )
    body = subsidy.awards(late, point.last_position)
    assert (body["policy_year"], body["awards"][0]["policy_year"], body["awards"][0]["award"]) == (
        2026,
        2026,
        "300000.00",
    )
    assert body["registration_number"].startswith("2026")
    assert programme(subsidy.ledger(a["credit_code"], 2026, point.last_position), "import")["remaining"] == (
        "4700000.00"
    )


def test_amendments_intermediary_institution_and_contracts_that_earn_nothing(stack):
    point = Point.create(stack["registry"].url)
    subsidy = Subsidy(stack["subsidy"].url)
    buyer, uni, broker = party("enterprise", 511), party("university", 512), party("social_organisation", 513)
    c1 = point.certified(
        terms(
            amount="10000000.00",
            technology_amount="4000000.00",
            buyer=buyer,
            seller=uni,
            intermediary=broker,
            result_id="ZL2024-9",
            signed_on="2024-01-02",
        ),
        day(2, 3, 2024),
    )
    first = subsidy.awards(c1, point.last_position)
    assert {x["programme"]: (x["award"], x["beneficiary"]) for x in first["awards"]} == {
        "import": ("3000000.00", buyer["credit_code"]),
        "export_institution": ("200000.00", uni["credit_code"]),
        "brokerage": ("80000.00", broker["credit_code"]),
    }
    # the same project a year later: the institution's 1,000,000.00 is per project over all years
    c2 = point.certified(
        terms(amount="20000000.00", technology_amount="20000000.00", buyer=buyer, seller=uni, result_id="ZL2024-9"),
        day(2, 3, 2025),
    )
    assert award_of(subsidy.awards(c2, point.last_position), "export_institution")["award"] == "800000.00"
    project = programme(subsidy.ledger(uni["credit_code"], 2025, point.last_position), "export_institution")
    # one project, known by its canonical result id (upper case, no spaces or hyphens)
    assert [(p["result_id"], p["awarded"], p["remaining"]) for p in project["projects"]] == [
        ("ZL20249", "1000000.00", "0.00")
    ]
    # amendment up (2024, import): 3.6M within the 5M cap; then down
    point.amend(c1, {"amount": "12000000.00"})
    up = award_of(subsidy.awards(c1, point.last_position), "import")
    assert (up["entitlement"], up["award"], up["status"], up["policy_year"]) == (
        "3600000.00",
        "3600000.00",
        "full",
        2024,
    )
    point.amend(c1, {"amount": "5000000.00", "technology_amount": "1000000.00"})
    down = subsidy.awards(c1, point.last_position)
    assert {x["programme"]: x["award"] for x in down["awards"]} == {
        "import": "1500000.00",
        "export_institution": "50000.00",
        "brokerage": "20000.00",
    }
    lines = programme(subsidy.ledger(buyer["credit_code"], 2024, point.last_position), "import")["awards"]
    assert [adj["delta"] for adj in lines[0]["adjustments"]] == ["600000.00", "-2100000.00"]
    # consulting and service earn nothing, and say why
    for category in ("consulting", "service"):
        c = point.certified(
            terms(category=category, subcategory=None, buyer=party("enterprise", 514), seller=uni), day(5)
        )
        body = subsidy.awards(c, point.last_position)
        assert body["awards"] == [] and f"category {category} earns no subsidy" in body["explanation"]


def test_bad_input_and_roles_get_problem_json(stack):
    registry, subsidy_url = stack["registry"].url, stack["subsidy"].url
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    partner = httpx.post(f"{registry}/v1/api-keys", json={"role": "partner"}, headers=admin).json()["secret"]
    point = Point.create(registry)
    cases = [
        ("/v1/beneficiaries/91640100000000001L/ledger", {}, 401),
        ("/v1/beneficiaries/91640100000000001L/ledger", {"Authorization": "Bearer nope"}, 401),
        ("/v1/beneficiaries/91640100000000001L/ledger", {"Authorization": f"Bearer {partner}"}, 403),
        ("/v1/awards", {"Authorization": f"Bearer {point.key}"}, 403),
        ("/v1/beneficiaries/91640100000000001X/ledger", admin, 422),  # wrong check digit
        (f"/v1/beneficiaries/{code(9999)}/ledger", admin, 404),  # valid, never awarded
        ("/v1/beneficiaries/91640100000000001L/ledger?year=1999", admin, 422),
        ("/v1/beneficiaries/91640100000000001L/ledger?year=abc", admin, 422),
        ("/v1/contracts/00000000-0000-0000-0000-000000000000/awards", admin, 404),
        ("/v1/awards?programme=bonus", admin, 422),
        ("/v1/awards?region=999999", admin, 422),
        ("/v1/awards?page_token=%%%", admin, 422),
    ]
    for path, headers, status in cases:
        r = httpx.get(subsidy_url + path, headers=headers)
        assert r.status_code == status, (path, r.text)
        assert r.headers["content-type"].startswith("application/problem+json"), path
        assert r.json()["status"] == status
    assert httpx.get(f"{subsidy_url}/v1/events", headers={"Authorization": f"Bearer {partner}"}).status_code == 200


def test_award_list_csv_feed_stream_status_and_metrics(stack):
    point = Point.create(stack["registry"].url)
    subsidy = Subsidy(stack["subsidy"].url)
    b = party("enterprise", 521, region="640521")
    c = point.certified(terms(amount="1000000.00", buyer=b, seller=party("enterprise", 522, region="110105")), day(7))
    subsidy.awards(c, point.last_position)
    listed = subsidy.ok("/v1/awards", year=2025, region="6405", programme="import")
    assert [x["contract_id"] for x in listed["awards"]] == [c]
    pages, token = [], None
    while True:
        page = subsidy.ok("/v1/awards", limit=2, page_token=token)
        pages.extend(page["awards"])
        token = page["next_page_token"]
        if not token:
            break
    assert len(pages) == len({x["award_id"] for x in pages}) == len(subsidy.ok("/v1/awards", limit=1000)["awards"])
    csv_text = subsidy.client.get("/v1/awards", params={"region": "640521"}, headers={"Accept": "text/csv"}).text
    rows = csv_text.strip().splitlines()
    assert rows[0].startswith("award_id,contract_id") and len(rows) == 2 and "300000.00" in rows[1]
    feed = subsidy.ok("/v1/events", after=0, limit=1000)
    mine = [e for e in feed["events"] if e["subject"] == c]
    assert mine[0]["type"] == "tcr.subsidy.award.decided.v1" and mine[0]["source"] == "/tcr/subsidy"
    assert mine[0]["data"]["cause"]["event_type"] == "tcr.registry.contract.certified.v1"
    last = feed["events"][-1]["position"]
    with subsidy.client.stream(
        "GET", "/v1/events/stream", headers={"Last-Event-ID": str(last - 1), "Accept": "text/event-stream"}
    ) as r:
        ids = []
        for line in r.iter_lines():
            if line.startswith("id:"):
                ids.append(int(line[3:]))
                break
    assert ids == [last]
    status = subsidy.ok("/v1/status")["feeds"][0]
    assert status["lag"] == 0 and status["position"] >= point.last_position
    programmes = subsidy.ok("/v1/programmes")
    assert programmes["in_force"] == "ningxia-2020"
    assert programmes["rule_sets"][0]["programmes"][0]["rate"] == "0.30"
    metrics = httpx.get(f"{stack['subsidy'].url}/metrics").text
    assert "tcr_subsidy_feed_lag_events" in metrics


SECOND_RULE_SET = """
id: ningxia-2026h2
title: test rule set with lower import rate from 2026-06-01
effective_from: 2026-06-01
eligible_categories: [development, transfer, licence]
programmes:
  - {programme: import, clause: "(四)", role: buyer, kinds: [enterprise], base: amount, rate: "0.10",
     cap: "2000000.00", cap_scope: policy_year}
"""


@pytest.fixture(scope="module")
def sqlite_registry(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("registry-alone")
    registry = start_registry(f"sqlite:///{tmp / 'registry.db'}", tmp)
    yield registry
    registry.kill()


def test_a_second_rule_set_from_a_file(sqlite_registry, tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "ningxia-2026h2.yaml").write_text(SECOND_RULE_SET)
    from tcr_subsidy.adapters.rule_files import DEFAULT_RULES_DIR

    point = Point.create(sqlite_registry.url)
    b = party("enterprise", 531)
    before = point.certified(terms(amount="1000000.00", buyer=b, seller=party("foreign")), day(31, 5, 2026, 23))
    after = point.certified(terms(amount="1000000.00", buyer=b, seller=party("foreign")), day(1, 6, 2026, 0))
    other = start_subsidy(
        f"sqlite:///{tmp_path / 'subsidy2.db'}",
        tmp_path,
        sqlite_registry.url,
        TCR_SUBSIDY_RULES_DIRS=f"{DEFAULT_RULES_DIR}:{rules}",
    )
    try:
        subsidy = Subsidy(other.url)
        got = [subsidy.awards(c, point.last_position)["awards"][0] for c in (before, after)]
        assert [(x["rule_set"], x["award"]) for x in got] == [
            ("ningxia-2020", "300000.00"),
            ("ningxia-2026h2", "100000.00"),
        ]
        history = subsidy.ok("/v1/programmes")
        assert history["in_force"] == "ningxia-2026h2"
        assert [(r["id"], r["effective_until"]) for r in history["rule_sets"]] == [
            ("ningxia-2020", "2026-06-01"),
            ("ningxia-2026h2", None),
        ]
    finally:
        other.stop()


def _load(point: Point, n: int, offset: int) -> None:
    def submit(i: int) -> str:
        buyer = party("enterprise", offset + i % 7)
        seller = party("university", offset + 50 + i % 3)
        return point.submit(
            terms(
                amount=f"{1000000 + i * 37123}.{i % 100:02d}",
                technology_amount="900000.00",
                buyer=buyer,
                seller=seller,
                result_id=f"R{i % 4}",
            )
        )

    def certified_on(i: int) -> datetime:
        return day(1 + i % 28, 2 + i % 11)

    def change(i: int) -> None:
        if i % 5 == 0:
            point.amend(ids[i], {"amount": f"{3000000 + i}.00"})
        if i % 9 == 0:
            point.revoke(ids[i])

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(submit, range(n)))
        # A point's numbers follow the order of certification: back-dated history is certified in time order.
        for i in sorted(range(n), key=certified_on):
            point.certify(ids[i], certified_on(i))
        list(pool.map(change, range(n)))


def _cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tcr_subsidy.adapters.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_kill_9_mid_catch_up_gives_identical_results(stack, tmp_path):
    registry = stack["registry"]
    point = Point.create(registry.url)
    _load(point, 150, offset=600)
    head = point.last_position
    backend = stack["backend"]
    url, drop = database_url(backend, tmp_path, "killed")
    fresh_url, fresh_drop = database_url(backend, tmp_path, "fresh")
    try:
        killed = start_subsidy(url, tmp_path, registry.url, TCR_SUBSIDY_PAGE_SIZE="3")
        kills, reached = 0, 0
        for _ in range(3):
            while True:  # wait until this process has applied something of its own, then kill it
                status = httpx.get(f"{killed.url}/v1/status", headers={"Authorization": f"Bearer {ADMIN_KEY}"}).json()[
                    "feeds"
                ][0]
                if status["position"] > reached or status["position"] >= head:
                    reached = status["position"]
                    break
                time.sleep(0.01)
            if status["position"] < head:
                killed.kill()  # SIGKILL mid catch-up: no shutdown, no flush
                kills += 1
                killed = start_subsidy(url, tmp_path, registry.url, port=killed.port, TCR_SUBSIDY_PAGE_SIZE="7")
        assert kills >= 1, "the follower caught up before it could be killed; load more events"
        fresh = start_subsidy(fresh_url, tmp_path, registry.url)
        try:
            feeds = []
            for service in (killed, fresh):
                Subsidy(service.url).wait_position(head)
                feeds.append(Subsidy(service.url).ok("/v1/events", after=0, limit=1000)["events"])
            assert len(feeds[0]) > 300
            assert json.dumps(feeds[0]) == json.dumps(feeds[1])  # same decisions, ids and positions
            env = {"TCR_SUBSIDY_DATABASE_URL": url, "TCR_REGISTRY_URL": registry.url, "TCR_ADMIN_KEY": ADMIN_KEY}
            verified = _cli(env, "verify")
            assert verified.returncode == 0, verified.stdout + verified.stderr
            assert "identical" in verified.stderr
        finally:
            fresh.stop()
        killed.stop()
        from sqlalchemy import create_engine, text

        from tcr_shared.platform.database import Database

        sync = create_engine(Database(url).sync_url)
        with sync.begin() as conn:
            conn.execute(text("UPDATE subsidy_awards SET award_fen = award_fen + 1 WHERE award_fen > 0"))
        sync.dispose()
        broken = _cli(env, "verify")
        assert broken.returncode == 1 and "awards: differs" in broken.stderr
        assert "awards a rebuild would change" in broken.stderr and "change -0.01" in broken.stderr
        rebuilt = _cli(env, "rebuild", "--yes")
        assert rebuilt.returncode == 0, rebuilt.stderr
        assert _cli(env, "verify").returncode == 0
    finally:
        for u, d in ((url, drop), (fresh_url, fresh_drop)):
            if d:
                postgres.drop_database(u)


def test_a_registry_that_is_down_makes_the_follower_wait_then_catch_up(tmp_path):
    registry = start_registry(f"sqlite:///{tmp_path / 'registry2.db'}", tmp_path)
    point = Point.create(registry.url)
    b = party("enterprise", 541)
    contracts = [
        point.certified(terms(amount="1000000.00", buyer=b, seller=party("foreign")), day(3)) for _ in range(3)
    ]
    registry.kill()
    subsidy = start_subsidy(f"sqlite:///{tmp_path / 'waiting.db'}", tmp_path, registry.url)
    try:
        time.sleep(1.5)  # the follower retries with backoff meanwhile
        status = Subsidy(subsidy.url).ok("/v1/status")["feeds"][0]
        assert status["position"] == 0
        registry = start_registry(f"sqlite:///{tmp_path / 'registry2.db'}", tmp_path, port=registry.port)
        got = Subsidy(subsidy.url)
        got.wait_position(point.last_position, timeout=60)
        assert [got.awards(c, point.last_position)["awards"][0]["award"] for c in contracts] == ["300000.00"] * 3
        assert got.ok("/v1/status")["feeds"][0]["lag"] == 0
    finally:
        subsidy.stop()
        registry.kill()


def test_hostile_query_values_answer_4xx_problem_json_at_once(stack):
    """Issue 11: positions beyond BIGINT, a min_position the registry has not reached, odd path values."""
    point = Point.create(stack["registry"].url)
    c = point.certified(terms(amount="1000000.00", buyer=party("enterprise", 551)), day(9))
    subsidy = Subsidy(stack["subsidy"].url)
    subsidy.awards(c, point.last_position)
    beyond = point.last_position + 1_000_000
    cases = [
        ("/v1/events", {"after": str(2**63)}, 422),
        ("/v1/events", {"after": "-1"}, 422),
        ("/v1/events/stream", {"after": str(2**63)}, 422),
        ("/v1/awards", {"min_position": str(2**63)}, 422),
        (f"/v1/contracts/{c}/awards", {"min_position": str(beyond)}, 409),
        ("/v1/awards", {"min_position": str(beyond)}, 409),
        (f"/v1/beneficiaries/{party('enterprise', 551)['credit_code']}/ledger", {"min_position": str(beyond)}, 409),
        ("/v1/contracts/%00/awards", {}, 404),
        ("/v1/awards", {"region": "64\x00"}, 422),
        ("/v1/beneficiaries/%00/ledger", {}, 422),
        ("/v1/subscriptions/%00", {}, 404),
        ("/v1/subscriptions/%00/deliveries", {}, 404),
        ("/v1/subscriptions/" + "a" * 5000, {}, 404),
    ]
    for path, params, status in cases:
        r = subsidy.client.get(path, params=params)
        assert r.status_code == status, (path, params, r.status_code, r.text)
        assert r.headers["content-type"].startswith("application/problem+json"), path
    r = subsidy.client.get(f"/v1/contracts/{c}/awards", params={"min_position": str(beyond)})
    assert r.json()["head"] >= point.last_position
    assert r.json()["errors"][0]["field"] == "min_position"


def test_a_beneficiary_ledger_is_found_under_any_spelling_of_its_code(stack):
    point = Point.create(stack["registry"].url)
    buyer = party("enterprise", 561)
    point.certified(terms(amount="1000000.00", buyer=buyer), day(11))
    subsidy = Subsidy(stack["subsidy"].url)
    code_ = buyer["credit_code"]
    canonical = subsidy.ledger(code_, 2025, point.last_position)
    for spelling in (code_.lower(), f"{code_[:6]}-{code_[6:]}"):
        assert subsidy.ledger(spelling, 2025, point.last_position) == canonical


def test_rebuild_with_the_feeds_running_pays_the_same_money_and_refuses_while_the_service_holds_it(stack, tmp_path):
    """Issue 10 item 6: the live projection and `tcr-subsidy rebuild` agree to the fen, awards that never changed
    included; a rebuild refuses while a running service holds the projection."""
    registry = stack["registry"]
    point = Point.create(registry.url)
    _load(point, 40, offset=700)
    backend = stack["backend"]
    url, drop = database_url(backend, tmp_path, "rebuilt")
    env = {"TCR_SUBSIDY_DATABASE_URL": url, "TCR_REGISTRY_URL": registry.url, "TCR_ADMIN_KEY": ADMIN_KEY}
    try:
        live = start_subsidy(url, tmp_path, registry.url)
        Subsidy(live.url).wait_position(point.last_position)
        before = _figures(Subsidy(live.url))
        assert any(a["status"] == "full" and a["award"] != "0.00" for a in before["awards"])  # never changed
        refused = _cli(env, "rebuild", "--yes")
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "held by a running subsidy service" in refused.stderr
        assert _figures(Subsidy(live.url)) == before  # the refusal deleted nothing
        live.stop()
        rebuilt = _cli(env, "rebuild", "--yes")
        assert rebuilt.returncode == 0, rebuilt.stderr
        again = start_subsidy(url, tmp_path, registry.url, port=live.port)
        try:
            Subsidy(again.url).wait_position(point.last_position)
            assert _figures(Subsidy(again.url)) == before
            status = Subsidy(again.url).ok("/v1/status")["feeds"][0]
            assert status["role"] == "leader"
            # the rebuilt projection goes on following the live registry
            c = point.certified(
                terms(amount="1000000.00", buyer=party("enterprise", 799)), day(30, month=12)
            )  # after _load's last
            assert Subsidy(again.url).awards(c, point.last_position)["awards"][0]["award"] == "300000.00"
        finally:
            again.stop()
    finally:
        if drop:
            postgres.drop_database(url)


def _figures(subsidy: Subsidy) -> dict:
    """Every award (amounts, status, explanations) and every award event, as a client reads them."""
    awards = subsidy.ok("/v1/awards", limit=1000)["awards"]
    events = subsidy.ok("/v1/events", after=0, limit=1000)["events"]
    return {"awards": awards, "events": events}


def test_readyz_fails_while_the_database_is_unreachable_and_recovers(postgres_server, tmp_path):
    """Issue 12: /readyz says whether the service can serve (its database answers); /healthz stays the liveness
    probe. The database refuses connections for a while (ALLOW_CONNECTIONS false, sessions terminated)."""
    import psycopg

    registry = start_registry(f"sqlite:///{tmp_path / 'registry-ready.db'}", tmp_path)
    url = postgres.create_database("tcr_ready")
    name = url.rsplit("/", 1)[1]
    subsidy = start_subsidy(url, tmp_path, registry.url)
    try:
        assert httpx.get(f"{subsidy.url}/readyz").status_code == 200
        with psycopg.connect(postgres.ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            down = httpx.get(f"{subsidy.url}/readyz", timeout=30)
            assert down.status_code == 503 and down.json()["ready"] is False
            assert httpx.get(f"{subsidy.url}/healthz").status_code == 200
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        for _ in range(100):  # recovers by itself (no restart); bounded, not timed
            if httpx.get(f"{subsidy.url}/readyz", timeout=30).status_code == 200:
                break
            time.sleep(0.1)
        assert httpx.get(f"{subsidy.url}/readyz").status_code == 200
    finally:
        subsidy.kill()
        registry.kill()
        postgres.drop_database(url)


def test_a_stalled_follower_makes_the_service_not_ready_and_resumes_by_itself(postgres_server, tmp_path):
    """Issue 12: the store refuses one registry event (a constraint an operator added by mistake); the follower
    never skips it, /v1/status names the event and its error, /readyz fails once it is stalled longer than
    TCR_SUBSIDY_STALL_AFTER, and the service resumes by itself when the cause goes."""
    import psycopg

    registry = start_registry(f"sqlite:///{tmp_path / 'registry-stall.db'}", tmp_path)
    url = postgres.create_database("tcr_stall")
    subsidy = start_subsidy(url, tmp_path, registry.url, TCR_SUBSIDY_STALL_AFTER="0.5")
    client = Subsidy(subsidy.url)
    try:
        point = Point.create(registry.url)
        point.certified(terms(amount="1000000.00", buyer=party("enterprise", 571)), day(13))
        client.wait_position(point.last_position)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "ALTER TABLE subsidy_awards ADD CONSTRAINT no_stall CHECK (beneficiary_name NOT LIKE 'Stall%')"
            )
            stuck_on = point.certified(
                terms(amount="2000000.00", buyer=party("enterprise", 572, name="Stall Co")), day(14)
            )
            after = point.certified(terms(amount="3000000.00", buyer=party("enterprise", 573)), day(15))
            for _ in range(300):  # bounded wait for the follower to be stalled (no timed assertion)
                feed = client.ok("/v1/status")["feeds"][0]
                if feed["state"] == "stalled":
                    break
                time.sleep(0.1)
            assert feed["state"] == "stalled", feed
            stuck = feed["stuck"]  # the first event of the page it cannot apply, after the position it holds
            assert (
                stuck["after"] == feed["position"] and stuck["event_position"] > feed["position"] and stuck["event_id"]
            )
            assert "no_stall" in feed["stuck"]["error"] and feed["stalled_since"]
            assert feed["lag"] > 0 and feed["role"] == "leader"
            assert httpx.get(f"{subsidy.url}/readyz").status_code == 503
            assert client.get(f"/v1/contracts/{after}/awards").status_code == 404  # nothing after it was applied
            conn.execute("ALTER TABLE subsidy_awards DROP CONSTRAINT no_stall")
        client.wait_position(point.last_position)
        assert client.awards(stuck_on, point.last_position)["awards"][0]["award"] == "600000.00"
        assert client.awards(after, point.last_position)["awards"][0]["award"] == "900000.00"
        assert client.ok("/v1/status")["feeds"][0]["state"] == "caught_up"
        assert httpx.get(f"{subsidy.url}/readyz").status_code == 200
    finally:
        subsidy.kill()
        registry.kill()
        postgres.drop_database(url)


def test_two_replicas_on_one_database_one_applies_the_feed_and_the_other_takes_over(postgres_server, tmp_path):
    """Issue 12: exactly one replica applies the registry feed and runs webhook delivery (leases); the standby
    serves reads with read-your-writes; when the leader dies the standby takes over."""
    registry = start_registry(f"sqlite:///{tmp_path / 'registry-replicas.db'}", tmp_path)
    url = postgres.create_database("tcr_replicas")
    replicas = [start_subsidy(url, tmp_path, registry.url) for _ in range(2)]
    try:
        point = Point.create(registry.url)
        c1 = point.certified(terms(amount="1000000.00", buyer=party("enterprise", 581)), day(16))
        for replica in replicas:  # read-your-writes on both, the standby included (it watches the position)
            assert Subsidy(replica.url).awards(c1, point.last_position)["awards"][0]["award"] == "300000.00"
        roles = [Subsidy(r.url).ok("/v1/status") for r in replicas]
        assert sorted(s["feeds"][0]["role"] for s in roles) == ["leader", "standby"]
        assert sorted(s["webhook_delivery"]["role"] for s in roles) == ["leader", "standby"]
        leader = next(r for r, s in zip(replicas, roles, strict=True) if s["feeds"][0]["role"] == "leader")
        standby = next(r for r in replicas if r is not leader)
        leader.kill()  # SIGKILL: its lock connection closes and PostgreSQL frees the lease
        c2 = point.certified(terms(amount="2000000.00", buyer=party("enterprise", 582)), day(17))
        survivor = Subsidy(standby.url)
        survivor.wait_position(point.last_position)
        assert survivor.awards(c2, point.last_position)["awards"][0]["award"] == "600000.00"
        status = survivor.ok("/v1/status")
        assert status["feeds"][0]["role"] == "leader" and status["webhook_delivery"]["role"] == "leader"
    finally:
        for replica in replicas:
            replica.kill()
        registry.kill()
        postgres.drop_database(url)


def test_status_says_unreachable_while_the_registry_does_not_answer(tmp_path):
    """Issue 12: /v1/status tells the truth about the feed it follows: with no registry answering, the state is
    `unreachable` with the error, and `lag` is null (the head is not known), never a reassuring 0."""
    from tests.support.processes import free_port

    nobody = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    service = start_subsidy(f"sqlite:///{tmp_path / 'subsidy-alone.db'}", tmp_path, nobody)
    try:
        deadline = time.monotonic() + 30
        while True:
            feed = httpx.get(f"{service.url}/v1/status", headers={"Authorization": f"Bearer {ADMIN_KEY}"}).json()
            feed = feed["feeds"][0]
            if feed["state"] == "unreachable" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert feed["state"] == "unreachable", feed
        assert feed["lag"] is None and feed["last_error"], feed
    finally:
        service.stop()
