"""Subsidies through the real subsidy service: the spec's worked example (rule set ningxia-2020).

Enterprise buyer in 兴庆区 640104 buys three licences in 2025 from one enterprise seller in 利通区 640302:
amounts 9,000,000.00 / 6,000,000.00 / 2,000,000.00 (technology 4,000,000.00 / 3,000,000.00 / 1,000,000.00).
import (buyer, 30% of amount, cap 5,000,000.00 a year): 2,700,000.00 + 1,800,000.00 + 500,000.00 (capped);
export_enterprise (seller, 5% of technology amount): 200,000.00 + 150,000.00 + 50,000.00.
The second contract is revoked: -1,800,000.00 and -150,000.00 are clawed back.
Net: 640104 import 3,200,000.00; 640302 export_enterprise 250,000.00; 640000 total 3,450,000.00."""

from __future__ import annotations

import time

import httpx

from tests.reporting.registry_api import org


def wait_for(client: httpx.Client, path: str, check, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(path).json()
        if check(body) or time.monotonic() > deadline:
            return body
        time.sleep(0.1)


def test_subsidies_by_programme_net_of_claw_backs(stack_with_subsidy) -> None:
    stack = stack_with_subsidy
    reg = stack.registry_api
    buyer, seller = org("640104"), org("640302")
    first = reg.contract(seller, buyer, "9000000.00", "4000000.00", "2025-03-01T10:00:00+08:00")
    second = reg.contract(seller, buyer, "6000000.00", "3000000.00", "2025-03-02T10:00:00+08:00")
    reg.contract(seller, buyer, "2000000.00", "1000000.00", "2025-03-03T10:00:00+08:00")
    reg.revoke(second)
    assert first != second
    stack.caught_up()
    client = stack.client()
    region = wait_for(client, "/v1/regions/640000/metrics?year=2025", lambda b: b["subsidies"]["total"] == "3450000.00")
    assert region["subsidies"] == {
        "total": "3450000.00",
        "by_programme": {
            "import": "3200000.00",
            "export_enterprise": "250000.00",
            "export_institution": "0.00",
            "brokerage": "0.00",
        },
    }
    county = client.get("/v1/regions/640104/metrics?year=2025").json()
    assert county["subsidies"]["by_programme"]["import"] == "3200000.00"
    assert county["subsidies"]["total"] == "3200000.00"
    assert client.get("/v1/regions/640100/metrics?year=2025").json()["subsidies"]["total"] == "3200000.00"
    seller_county = client.get("/v1/regions/640302/metrics?year=2025").json()
    assert seller_county["subsidies"]["by_programme"] == {
        "import": "0.00",
        "export_enterprise": "250000.00",
        "export_institution": "0.00",
        "brokerage": "0.00",
    }
    # contracts: two certified and counted, the revoked one nowhere
    assert (county["inflow"]["count"], county["inflow"]["amount"]) == (2, "11000000.00")
    status = client.get("/v1/status").json()["feeds"]["subsidy"]
    assert status["reachable"] is True and status["error"] is None and status["position"] > 0
    # the annual report carries the subsidies
    report = client.get("/v1/reports/annual/2025").json()
    assert report["region"]["figures"]["subsidies_total"] == "3450000.00"
    assert report["region"]["figures"]["subsidies_import"] == "3200000.00"
