"""Policy what-if end to end: the registry and the subsidy service as real uvicorn processes (SQLite and
PostgreSQL); a rule set fetched from GET /v1/programmes, changed and posted back; the kept simulation downloaded;
the live ledger and award feed untouched; `tcr-subsidy simulate` from a terminal."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import time
from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from io import BytesIO

import httpx
import pytest
import yaml
from openpyxl import load_workbook

from tests.subsidy.history import CST, party, terms
from tests.subsidy.stack import (
    ADMIN_KEY,
    Point,
    Subsidy,
    admin_headers,
    database_url,
    start_registry,
    start_subsidy,
)
from tests.support import postgres

pytestmark = pytest.mark.e2e
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(request, tmp_path_factory):
    if request.param == "postgresql":
        request.getfixturevalue("postgres_server")
    tmp = tmp_path_factory.mktemp(f"whatif-{request.param}")
    urls = [database_url(request.param, tmp, name) for name in ("registry", "subsidy")]
    registry = start_registry(urls[0][0], tmp)
    subsidy = start_subsidy(urls[1][0], tmp, registry.url)
    yield {"registry": registry, "subsidy": subsidy, "tmp": tmp, "subsidy_db": urls[1][0]}
    subsidy.stop()
    registry.kill()
    for url, drop in urls:
        if drop:
            postgres.drop_database(url)


def key(registry_url: str, role: str) -> str:
    r = httpx.post(f"{registry_url}/v1/api-keys", json={"role": role}, headers=admin_headers(), timeout=30)
    assert r.status_code == 201, r.text
    return r.json()["secret"]


def day(month: int, d: int, year: int = 2025) -> datetime:
    return datetime(year, month, d, 10, tzinfo=CST)


def live_state(subsidy: Subsidy) -> tuple[list, int]:
    awards = subsidy.ok("/v1/awards", limit=1000)["awards"]
    return awards, subsidy.ok("/v1/status")["award_feed"]["head"]


def test_what_if_through_the_running_services(stack, tmp_path):
    point = Point.create(stack["registry"].url)
    admin = Subsidy(stack["subsidy"].url)
    analyst = Subsidy(stack["subsidy"].url, key(stack["registry"].url, "analyst"))
    partner = Subsidy(stack["subsidy"].url, key(stack["registry"].url, "partner"))
    a, b = party("enterprise", 601, region="640104"), party("enterprise", 602, region="640221")
    seller = party("university", 603, region="640105")
    contracts = [
        point.certified(terms(amount=amount, technology_amount="100000.00", buyer=a, seller=seller), day(3, d))
        for amount, d in (("9000000.00", 1), ("6000000.00", 2), ("2000000.00", 3))
    ]
    point.certified(terms(amount="1000000.00", technology_amount="100000.00", buyer=b, seller=seller), day(4, 1))
    point.revoke(point.certified(terms(amount="500000.00", buyer=b, seller=seller), day(4, 2)))
    point.amend(contracts[0], {"title": "renamed"})
    admin.wait_position(point.last_position)
    awards_before, head_before = live_state(admin)
    live_totals: dict[str, Decimal] = defaultdict(Decimal)
    for award in awards_before:
        if award["policy_year"] == 2025:
            live_totals[award["programme"]] += Decimal(award["award"])

    fetched = analyst.ok("/v1/programmes")["rule_sets"][0]
    candidate = copy.deepcopy(fetched)
    imports = next(p for p in candidate["programmes"] if p["programme"] == "import")
    imports["rate"], imports["cap"] = "0.20", "3000000.00"
    r = analyst.client.post("/v1/simulations", json={"rules": candidate, "from_year": 2025, "to_year": 2025})
    assert r.status_code == 201, r.text
    simulation = r.json()
    assert r.headers["location"] == f"/v1/simulations/{simulation['id']}"
    assert simulation["created_by"].startswith("analyst:")
    totals = {row["programme"]: row for row in simulation["result"]["totals"]}
    # the rules in force, replayed in memory, give the live ledger's figures to the fen
    assert {p: Decimal(row["in_force"]) for p, row in totals.items()} == dict(live_totals)
    assert (totals["import"]["in_force"], totals["import"]["candidate"]) == ("5300000.00", "3200000.00")
    assert (totals["import"]["difference"], totals["import"]["capped"]) == ("-2100000.00", 1)
    assert totals["export_institution"]["difference"] == "0.00"
    assert simulation["result"]["beneficiaries"][0]["beneficiary"] == a["credit_code"]

    as_yaml = analyst.client.post(
        "/v1/simulations", json={"rules": yaml.safe_dump(candidate), "from_year": 2025, "to_year": 2025}
    )
    assert as_yaml.status_code == 201, as_yaml.text
    assert as_yaml.json()["result"]["totals"] == simulation["result"]["totals"]
    same = analyst.client.post("/v1/simulations", json={"rules": fetched, "from_year": 2021, "to_year": 2025})
    assert all(row["difference"] == "0.00" for row in same.json()["result"]["totals"])

    kept = analyst.get(f"/v1/simulations/{simulation['id']}")
    assert kept.status_code == 200 and kept.json() == simulation
    as_csv = analyst.client.get(f"/v1/simulations/{simulation['id']}", headers={"Accept": "text/csv"})
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert "regions,2025,import,640104," in as_csv.content.decode("utf-8-sig")
    as_xlsx = analyst.client.get(f"/v1/simulations/{simulation['id']}", headers={"Accept": XLSX})
    assert as_xlsx.headers["content-type"] == XLSX
    assert load_workbook(BytesIO(as_xlsx.content)).sheetnames == ["合计 Totals", "地区 Regions", "受益方 Beneficiaries"]
    assert analyst.get("/v1/simulations/not-a-simulation").status_code == 404

    bad = copy.deepcopy(fetched)
    bad["programmes"][0]["rate"] = "1.5"
    refused = analyst.client.post("/v1/simulations", json={"rules": bad, "from_year": 2025, "to_year": 2025})
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert [e["field"] for e in refused.json()["errors"]] == ["rules.programmes[0].rate"]
    broken = analyst.client.post("/v1/simulations", json={"rules": "rate: [", "from_year": 2025, "to_year": 2025})
    assert broken.status_code == 422 and broken.json()["errors"][0]["field"] == "rules"
    assert (
        partner.client.post(
            "/v1/simulations", json={"rules": candidate, "from_year": 2025, "to_year": 2025}
        ).status_code
        == 403
    )

    # nothing live changed: awards, award feed
    assert live_state(admin) == (awards_before, head_before)

    path = tmp_path / "candidate.yaml"
    path.write_text(yaml.safe_dump(candidate, allow_unicode=True), encoding="utf-8")
    env = {
        **os.environ,
        "TCR_SUBSIDY_DATABASE_URL": stack["subsidy_db"],
        "TCR_DATA_DIR": str(stack["tmp"]),
        "TCR_REGISTRY_URL": stack["registry"].url,
        "TCR_ADMIN_KEY": ADMIN_KEY,
        "COLUMNS": "200",
    }
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "tcr_subsidy.adapters.cli",
            "simulate",
            str(path),
            "--years",
            "2025",
            "--xlsx",
            str(tmp_path / "out.xlsx"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0, cli.stderr
    assert "-2,100,000.00" in cli.stdout and "import" in cli.stdout and a["credit_code"] in cli.stdout
    assert load_workbook(tmp_path / "out.xlsx").sheetnames[0] == "合计 Totals"
    assert live_state(admin) == (awards_before, head_before)


def test_a_long_history_is_a_job_polled_until_done_through_the_running_services(stack, tmp_path):
    """A second subsidy service on the same registry whose job threshold is one registry event: the simulation
    answers 202 and a job, whose GET shows it running and then done, with the same comparison as the 201 of the
    first service, whose threshold is the default."""
    point = Point.create(stack["registry"].url)
    buyer, seller = party("enterprise", 611, region="640104"), party("university", 612, region="640105")
    point.certified(terms(amount="8000000.00", technology_amount="100000.00", buyer=buyer, seller=seller), day(5, 1))
    backend = "postgresql" if stack["subsidy_db"].startswith("postgresql") else "sqlite"
    url, drop = database_url(backend, tmp_path, "subsidy_jobs")
    jobs = start_subsidy(url, tmp_path, stack["registry"].url, TCR_SUBSIDY_SIMULATION_JOB_AFTER="1")
    try:
        short, long = Subsidy(stack["subsidy"].url), Subsidy(jobs.url)
        short.wait_position(point.last_position)
        long.wait_position(point.last_position)
        fetched = short.ok("/v1/programmes")["rule_sets"][0]
        imports = next(p for p in fetched["programmes"] if p["programme"] == "import")
        imports["rate"], imports["cap"] = "0.20", "3000000.00"
        body = {"rules": fetched, "from_year": 2025, "to_year": 2025}
        answered = short.client.post("/v1/simulations", json=body)
        assert answered.status_code == 201 and answered.json()["status"] == "done", answered.text
        started = long.client.post("/v1/simulations", json=body)
        assert started.status_code == 202, started.text
        assert started.json()["status"] == "running" and "progress" in started.json()
        location = started.headers["location"]
        for _ in range(600):
            polled = long.get(location)
            assert polled.status_code == 200
            if polled.json()["status"] != "running":
                break
            time.sleep(0.1)
        assert polled.json()["status"] == "done", polled.text
        for part in ("summary", "totals", "regions", "beneficiaries"):
            assert polled.json()["result"][part] == answered.json()["result"][part], part
    finally:
        jobs.stop()
        if drop:
            postgres.drop_database(url)
