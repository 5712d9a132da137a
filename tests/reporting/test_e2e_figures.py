"""Hand-computed figures through the real registry's HTTP API and the real reporting service (uvicorn
processes), with the reporting database on SQLite and on PostgreSQL.

Counties: A 640104 兴庆区 and B 640181 灵武市 (银川市 640100), C 640302 利通区 (吴忠市 640300), D 640205 惠农区
(石嘴山市 640200), E 640402 原州区 (固原市 640400). Outside Ningxia: 110108 (Beijing), 310104 (Shanghai).

  k1 A->C licence 300.00/200.00 certified 2024-05-01 10:00+08:00                    -> 2024
  k3 B->D consulting 50.00/50.00 certified 2024-12-31 23:59+08:00                   -> 2024 (Shanghai year end)
  k2 C->A development 1000.00/900.00 certified 2024-12-31T16:30Z = 2025-01-01 00:30+08:00 -> 2025
  k4 A->B licence 4000000.00/3000000.00, then amended: amount 4500000.00, category transfer, seller in D -> 2025
  k5 C->C service 200.00/150.00 (same county: outflow and inflow of C)              -> 2025
  k6 B->A consulting 700.00/700.00, then revoked                                    -> nowhere
  k7 E->Beijing development 1234.56/1000.01                                         -> 2025, outflow of E only
  k8 Shanghai->A licence 800.00/600.00                                              -> 2025, inflow of A only
  k9 A->A submitted, never certified                                                -> nowhere
"""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import httpx
import pytest
from openpyxl import load_workbook

from tcr_shared.language.regions import counties, ningxia_regions, prefectures
from tests.reporting.registry_api import org

A, B, C, D, E = "640104", "640181", "640302", "640205", "640402"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.fixture(scope="module")
def scenario(stack_any_backend):
    stack = stack_any_backend
    reg = stack.registry_api
    reg.contract(org(A), org(C), "300.00", "200.00", "2024-05-01T10:00:00+08:00", signed_on="2024-04-01")
    reg.contract(
        org(B),
        org(D),
        "50.00",
        "50.00",
        "2024-12-31T23:59:00+08:00",
        category="consulting",
        subcategory=None,
        signed_on="2024-12-01",
    )
    reg.contract(
        org(C, "university"),
        org(A),
        "1000.00",
        "900.00",
        "2024-12-31T16:30:00+00:00",
        category="development",
        subcategory="commissioned",
        signed_on="2024-12-01",
    )
    k4 = reg.contract(org(A), org(B), "4000000.00", "3000000.00", "2025-03-01T10:00:00+08:00")
    reg.contract(org(C), org(C), "200.00", "150.00", "2025-04-01T10:00:00+08:00", category="service", subcategory=None)
    k6 = reg.contract(
        org(B), org(A), "700.00", "700.00", "2025-05-01T10:00:00+08:00", category="consulting", subcategory=None
    )
    reg.contract(
        org(E, "research_institute"),
        org("110108"),
        "1234.56",
        "1000.01",
        "2025-06-01T10:00:00+08:00",
        category="development",
        subcategory="cooperative",
    )
    reg.contract(org("310104"), org(A), "800.00", "600.00", "2025-07-01T10:00:00+08:00")
    reg.submit(org(A), org(A), "99.00", "99.00")
    reg.amend(k4, {"amount": "4500000.00", "category": "transfer", "subcategory": "patent", "seller": {"region": D}})
    reg.revoke(k6)
    stack.caught_up()
    return stack.client()


def side(metrics: dict, name: str) -> tuple:
    s = metrics[name]
    return s["count"], s["amount"], s["technology_amount"]


def test_county_figures(scenario: httpx.Client) -> None:
    def m(code: str, year: int = 2025) -> dict:
        response = scenario.get(f"/v1/regions/{code}/metrics", params={"year": year})
        assert response.status_code == 200, response.text
        return response.json()

    a = m(A)
    assert a["name"] == {"zh": "兴庆区", "en": "Xingqing District"} and a["year"] == 2025
    assert side(a, "outflow") == (0, "0.00", "0.00")  # k4 moved to D by amendment, k6 revoked
    assert side(a, "inflow") == (2, "1800.00", "1500.00")  # k2 (year boundary) and k8
    assert a["inflow"]["by_category"]["development"] == {"count": 1, "amount": "1000.00", "technology_amount": "900.00"}
    assert a["inflow"]["by_category"]["licence"] == {"count": 1, "amount": "800.00", "technology_amount": "600.00"}
    assert a["inflow"]["by_category"]["consulting"]["count"] == 0  # k6 revoked
    assert a["subsidies"] == {
        "total": "0.00",
        "by_programme": {
            "import": "0.00",
            "export_enterprise": "0.00",
            "export_institution": "0.00",
            "brokerage": "0.00",
        },
    }
    b = m(B)
    assert side(b, "outflow") == (0, "0.00", "0.00")
    assert side(b, "inflow") == (1, "4500000.00", "3000000.00")
    assert b["inflow"]["by_category"]["transfer"]["amount"] == "4500000.00"
    assert b["inflow"]["by_category"]["licence"]["count"] == 0
    c = m(C)
    assert side(c, "outflow") == (2, "1200.00", "1050.00")
    assert side(c, "inflow") == (1, "200.00", "150.00")  # same-county k5 counts on both sides
    assert (
        c["outflow"]["by_category"]["service"]
        == c["inflow"]["by_category"]["service"]
        == {"count": 1, "amount": "200.00", "technology_amount": "150.00"}
    )
    d = m(D)
    assert side(d, "outflow") == (1, "4500000.00", "3000000.00")
    assert d["outflow"]["by_category"]["transfer"]["count"] == 1
    assert side(d, "inflow") == (0, "0.00", "0.00")
    assert side(m(E), "outflow") == (1, "1234.56", "1000.01")
    # 2024, including k3 certified one minute before the Shanghai new year
    assert side(m(A, 2024), "outflow") == (1, "300.00", "200.00")
    assert side(m(B, 2024), "outflow") == (1, "50.00", "50.00")
    assert side(m(D, 2024), "inflow") == (1, "50.00", "50.00")
    assert side(m(C, 2024), "inflow") == (1, "300.00", "200.00")
    assert side(m(A, 2024), "inflow") == (0, "0.00", "0.00")  # k2 belongs to 2025


def test_prefecture_and_region_roll_ups(scenario: httpx.Client) -> None:
    def m(code: str, year: int = 2025) -> dict:
        return scenario.get(f"/v1/regions/{code}/metrics", params={"year": year}).json()

    assert side(m("640100"), "outflow") == (0, "0.00", "0.00")
    assert side(m("640100"), "inflow") == (3, "4501800.00", "3001500.00")
    assert side(m("640300"), "outflow") == (2, "1200.00", "1050.00")
    assert side(m("640200"), "outflow") == (1, "4500000.00", "3000000.00")
    region = m("640000")
    assert region["level"] == "region"
    # at region level each contract counts once per side (k5 once in outflow, once in inflow)
    assert side(region, "outflow") == (4, "4502434.56", "3002050.01")
    assert side(region, "inflow") == (4, "4502000.00", "3001650.00")
    assert side(m("640000", 2024), "outflow") == (2, "350.00", "250.00")
    # every prefecture equals the sum of its counties, field by field, by category too
    for year in (2024, 2025):
        for prefecture in prefectures():
            total = m(prefecture.code, year)
            members = [m(c.code, year) for c in counties() if c.parent == prefecture.code]
            for name in ("outflow", "inflow"):
                assert total[name]["count"] == sum(x[name]["count"] for x in members)
                for field in ("amount", "technology_amount"):
                    assert Decimal(total[name][field]) == sum(Decimal(x[name][field]) for x in members)
                for category, figures in total[name]["by_category"].items():
                    assert Decimal(figures["amount"]) == sum(
                        Decimal(x[name]["by_category"][category]["amount"]) for x in members
                    )


def test_rankings_with_change_against_previous_year(scenario: httpx.Client) -> None:
    body = scenario.get("/v1/rankings", params={"year": 2025, "level": "county"}).json()
    ranks = {i["region"]: (i["rank"], i["previous_rank"], i["rank_change"]) for i in body["items"]}
    assert [i["region"] for i in body["items"][:5]] == [D, E, C, B, A]
    assert ranks[D] == (1, 4, 3)
    assert ranks[E] == (2, 5, 3)
    assert ranks[C] == (3, 3, 0)
    assert ranks[B] == (4, 2, -2)  # no outflow: ranked by inflow 4,500,000.00
    assert ranks[A] == (5, 1, -4)
    assert ranks["640522"] == (6, 5, -1)  # the 17 counties with nothing share rank 6
    assert len(body["items"]) == 22 and sum(1 for r in ranks.values() if r[0] == 6) == 17
    prefecture = scenario.get("/v1/rankings", params={"year": 2025, "level": "prefecture"}).json()
    assert [(i["region"], i["rank"], i["rank_change"]) for i in prefecture["items"]] == [
        ("640200", 1, 2),
        ("640400", 2, 2),
        ("640300", 3, -1),
        ("640100", 4, -3),
        ("640500", 5, -1),
    ]


def test_annual_report_json_csv_xlsx_agree(scenario: httpx.Client) -> None:
    report = scenario.get("/v1/reports/annual/2025").json()
    assert report["provisional"] is False and report["due_date"] == "2026-01-31"
    lines = {}
    for prefecture in report["prefectures"]:
        lines[prefecture["region"]] = prefecture
        for county in prefecture["counties"]:
            lines[county["region"]] = county
    lines["640000"] = report["region"]
    assert set(lines) == set(ningxia_regions())
    a = lines[A]
    assert a["figures"]["outflow_amount"] == "0.00" and a["previous"]["outflow_amount"] == "300.00"
    assert a["change"]["outflow_amount"] == "-300.00" and a["change"]["outflow_count"] == -1
    assert a["change"]["inflow_amount"] == "1800.00" and a["rank"] == 5 and a["rank_change"] == -4
    assert lines["640000"]["change"]["outflow_amount"] == "4502084.56"

    response = scenario.get("/v1/reports/annual/2025", headers={"Accept": "text/csv"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert response.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert len(rows) == 28
    for row in rows:
        line = lines[row["region"]]
        assert row["name_zh"] == line["name"]["zh"] and row["level"] == line["level"]
        assert row["provisional"] == "false" and row["due_date"] == "2026-01-31"
        for field in report["fields"]:
            assert row[field] == str(line["figures"][field]), (row["region"], field)
            assert row[f"change_{field}"] == str(line["change"][field]), (row["region"], field)
            assert row[f"previous_{field}"] == str(line["previous"][field]), (row["region"], field)
    assert next(r for r in rows if r["region"] == "640104")["name_zh"] == "兴庆区"

    response = scenario.get("/v1/reports/annual/2025", headers={"Accept": XLSX})
    assert response.status_code == 200 and response.headers["content-type"] == XLSX
    workbook = load_workbook(io.BytesIO(response.content))
    assert len(workbook.sheetnames) == 6 and workbook.sheetnames[0] == "汇总 Summary"
    summary = workbook["汇总 Summary"]
    assert "2026-01-31" in summary["A2"].value
    header = [summary.cell(row=4, column=i).value for i in range(1, summary.max_column + 1)]
    assert summary.cell(row=4, column=1).font.bold and summary.freeze_panes == "D5"
    seen = 0
    for ws in workbook.worksheets:
        for row in ws.iter_rows(min_row=5, values_only=True):
            if not row[0]:
                continue
            line = lines[str(row[0])]
            assert row[1] == line["name"]["zh"]
            values = row[6:]
            fields = [
                "outflow_count",
                "outflow_amount",
                "outflow_technology_amount",
                "inflow_count",
                "inflow_amount",
                "inflow_technology_amount",
                "subsidies_total",
            ]
            for i, field in enumerate(fields):
                assert Decimal(str(values[i])).quantize(Decimal("0.01")) == Decimal(
                    str(line["figures"][field])
                ).quantize(Decimal("0.01")), (row[0], field)
                assert Decimal(str(values[i + len(fields)])).quantize(Decimal("0.01")) == Decimal(
                    str(line["change"][field])
                ).quantize(Decimal("0.01")), (row[0], field)
            seen += 1
    assert seen == 22 + 5 + 5 + 1  # counties, prefectures on their sheets and in the summary, the region
    money_cell = summary.cell(row=5, column=8)
    assert "#,##0.00" in money_cell.number_format and len(header) == 20


def test_report_for_the_running_year_is_provisional(scenario: httpx.Client) -> None:
    from tcr_shared.language.policy_time import now_utc, policy_year

    year = policy_year(now_utc())
    response = scenario.get(f"/v1/reports/annual/{year}")
    assert response.json()["provisional"] is True and response.headers["TCR-Provisional"] == "true"
    assert response.json()["due_date"] == f"{year + 1}-01-31"
    csv_text = scenario.get(f"/v1/reports/annual/{year}", headers={"Accept": "text/csv"}).content.decode("utf-8-sig")
    assert all(row["provisional"] == "true" for row in csv.DictReader(io.StringIO(csv_text)))
    ws = load_workbook(io.BytesIO(scenario.get(f"/v1/reports/annual/{year}", headers={"Accept": XLSX}).content)).active
    assert "PROVISIONAL" in ws["A2"].value


def test_bad_input_is_problem_json(scenario: httpx.Client, stack_any_backend) -> None:
    def problem(response: httpx.Response, status: int) -> dict:
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        body = response.json()
        assert body["status"] == status and body["detail"]
        return body

    problem(scenario.get("/v1/regions/640199/metrics", params={"year": 2025}), 404)
    problem(scenario.get("/v1/regions/110108/metrics", params={"year": 2025}), 404)
    body = problem(scenario.get("/v1/regions/640104/metrics", params={"year": 2099}), 422)
    assert body["errors"][0]["field"] == "year"
    problem(scenario.get("/v1/regions/640104/metrics", params={"year": 1999}), 422)
    problem(scenario.get("/v1/regions/640104/metrics", params={"year": "last"}), 422)
    problem(scenario.get("/v1/rankings", params={"year": 2025, "level": "village"}), 422)
    problem(scenario.get("/v1/reports/annual/2099"), 422)
    problem(scenario.get("/v1/reports/annual/2025", headers={"Accept": "application/pdf"}), 406)
    problem(scenario.get("/v1/regions/640104/metrics", params={"year": 2025}, headers={"Accept": "text/csv"}), 406)
    assert (
        scenario.get("/v1/reports/annual/2025", headers={"Accept": "text/csv;q=0.5, application/json;q=0.9"})
        .headers["content-type"]
        .startswith("application/json")
    )
    url = stack_any_backend.reporting.url
    problem(httpx.get(f"{url}/v1/regions/640104/metrics"), 401)
    problem(httpx.get(f"{url}/v1/status", headers={"Authorization": "Bearer not-a-key"}), 401)
    point_key = stack_any_backend.registry_api.key("partner")
    problem(httpx.get(f"{url}/v1/rankings", headers={"Authorization": f"Bearer {point_key}"}), 403)
    analyst = stack_any_backend.registry_api.key("analyst")
    assert (
        httpx.get(
            f"{url}/v1/rankings", params={"year": 2025}, headers={"Authorization": f"Bearer {analyst}"}
        ).status_code
        == 200
    )


def test_status_reports_both_feeds_and_the_missing_subsidy_service(scenario: httpx.Client, stack_any_backend) -> None:
    feeds = scenario.get("/v1/status").json()["feeds"]
    registry = feeds["registry"]
    assert registry["position"] == registry["head"] >= stack_any_backend.registry_api.last_position
    assert registry["lag"] == 0 and registry["reachable"] is True and registry["error"] is None
    subsidy = feeds["subsidy"]
    assert subsidy["reachable"] is False and subsidy["position"] == 0
    assert "connect" in subsidy["error"].lower()
