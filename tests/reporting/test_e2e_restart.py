"""kill -9 and restart, and `tcr-reporting rebuild` from zero, give the same figures, equal to a hand count."""

from __future__ import annotations

import httpx

from tcr_shared.language.regions import counties, ningxia_regions
from tests.reporting.registry_api import org


def snapshot(client: httpx.Client) -> dict:
    result: dict = {}
    for year in (2024, 2025):
        for code in ningxia_regions():
            result[("metrics", code, year)] = client.get(f"/v1/regions/{code}/metrics", params={"year": year}).json()
        for level in ("county", "prefecture"):
            result[("rankings", level, year)] = client.get("/v1/rankings", params={"year": year, "level": level}).json()
        report = client.get(f"/v1/reports/annual/{year}").json()
        report.pop("generated_at")
        report.pop("as_of")
        result[("report", year)] = report
    return result


def test_kill_9_restart_and_rebuild_give_identical_figures(stack_any_backend) -> None:
    stack = stack_any_backend
    reg = stack.registry_api
    codes = [c.code for c in counties()]
    ids = []
    for i in range(30):
        ids.append(
            reg.contract(org(codes[i % 22]), org(codes[(i + 1) % 22]), "10.00", "5.00", "2025-02-01T09:00:00+08:00")
        )
    stack.reporting.kill()  # SIGKILL, possibly in the middle of applying a page
    # while reporting is down: more contracts, an amendment and a revocation
    for i in range(20):
        reg.contract(org(codes[(i + 5) % 22]), org(codes[(i + 9) % 22]), "20.00", "10.00", "2025-03-01T09:00:00+08:00")
    reg.amend(ids[0], {"amount": "110.00"})
    reg.revoke(ids[1])
    stack.start_reporting()
    stack.caught_up()
    client = stack.client()
    region = client.get("/v1/regions/640000/metrics", params={"year": 2025}).json()
    # hand count: 30 x 10.00 + 20 x 20.00 + 100.00 (amendment) - 10.00 (revoked); technology 150 + 200 - 5
    for name in ("outflow", "inflow"):
        assert (region[name]["count"], region[name]["amount"], region[name]["technology_amount"]) == (
            49,
            "790.00",
            "345.00",
        )
    first_seller = client.get(f"/v1/regions/{codes[0]}/metrics", params={"year": 2025}).json()
    # county 0 sold contracts 0 and 22 (10.00 each) and, while down, contract 17 of the second batch (20.00);
    # contract 0 was amended to 110.00
    assert first_seller["outflow"]["amount"] == "140.00" and first_seller["outflow"]["count"] == 3
    before = snapshot(client)

    stack.reporting.stop()
    result = stack.rebuild()
    assert result.returncode == 0, result.stderr + result.stdout
    assert "rebuilt" in result.stderr and "registry" in result.stderr
    assert "subsidy feed unavailable" in result.stderr
    stack.start_reporting()
    stack.caught_up()
    after = snapshot(stack.client())
    assert after == before
