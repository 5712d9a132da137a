"""`tcr-reporting rebuild` with BOTH feeds running (registry and subsidy uvicorn processes) gives exactly the live
projection's figures, subsidies of awards that never changed included; and it refuses to run while the service
holds the projection.

Hand count (rule set ningxia-2020; enterprise buyers earn import 30% of the amount, enterprise sellers
export_enterprise 5% of the technology amount), policy year 2025:
- A: 640104 sells to 640302, 10,000.00 / 4,000.00: import 3,000.00 to 640302, export 200.00 to 640104 (never changes);
- B: 640302 sells to 640104, 20,000.00 / 8,000.00: import 6,000.00 to 640104, export 400.00 to 640302 (never changes);
- C: 640181 sells to 640521, 30,000.00 / 10,000.00, amended to 40,000.00: import 12,000.00 to 640521, export 500.00
  to 640181;
- D: 640521 sells to 640181, 50,000.00 / 20,000.00, revoked: nothing.
"""

from __future__ import annotations

import time

import httpx
import pytest

from tests.reporting.conftest import make_stack
from tests.reporting.registry_api import org
from tests.reporting.test_e2e_restart import snapshot
from tests.support import postgres

EXPECTED_SUBSIDIES = {  # region -> (import, export_enterprise)
    "640104": ("6000.00", "200.00"),
    "640302": ("3000.00", "400.00"),
    "640521": ("12000.00", "0.00"),
    "640181": ("0.00", "500.00"),
    "640100": ("6000.00", "700.00"),
    "640000": ("21000.00", "1100.00"),
}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack_both_feeds(request, tmp_path_factory):
    url = None
    if request.param == "postgresql":
        request.getfixturevalue("postgres_server")
        url = postgres.create_database("tcr_reporting_rebuild")
    stack = make_stack(tmp_path_factory.mktemp("stack"), url, with_subsidy=True)
    stack.start_reporting()
    yield stack
    stack.close()
    if url:
        postgres.drop_database(url)


def wait_until(check, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def both_feeds_applied(stack) -> None:
    """Reporting has applied the registry feed to the last write, and the subsidy feed to the award feed's head
    once the subsidy service has decided every registry event."""
    subsidy = httpx.Client(base_url=stack.subsidy.url, headers={"Authorization": f"Bearer {stack.admin_key}"})
    reporting = httpx.Client(base_url=stack.reporting.url, headers={"Authorization": f"Bearer {stack.admin_key}"})
    with subsidy, reporting:
        target = stack.registry_api.last_position
        decided = wait_until(
            lambda: (body := subsidy.get("/v1/status").json())["feeds"][0]["position"] >= target and body,
            "the subsidy service to decide every contract",
        )
        head = decided["award_feed"]["head"]
        wait_until(
            lambda: (
                (feeds := reporting.get("/v1/status").json()["feeds"])["registry"]["position"] >= target
                and feeds["subsidy"]["position"] >= head
            ),
            "reporting to apply both feeds",
        )


def subsidies(client: httpx.Client) -> dict[str, tuple[str, str]]:
    result = {}
    for code in EXPECTED_SUBSIDIES:
        by_programme = client.get(f"/v1/regions/{code}/metrics", params={"year": 2025}).json()["subsidies"]
        result[code] = (by_programme["by_programme"]["import"], by_programme["by_programme"]["export_enterprise"])
    return result


def test_rebuild_with_both_feeds_gives_the_live_figures_and_refuses_while_the_service_runs(stack_both_feeds) -> None:
    stack = stack_both_feeds
    reg = stack.registry_api
    reg.contract(org("640104"), org("640302"), "10000.00", "4000.00", "2025-03-01T09:00:00+08:00")
    reg.contract(org("640302"), org("640104"), "20000.00", "8000.00", "2025-03-02T09:00:00+08:00")
    amended = reg.contract(org("640181"), org("640521"), "30000.00", "10000.00", "2025-03-03T09:00:00+08:00")
    revoked = reg.contract(org("640521"), org("640181"), "50000.00", "20000.00", "2025-03-04T09:00:00+08:00")
    reg.amend(amended, {"amount": "40000.00"})
    reg.revoke(revoked)
    both_feeds_applied(stack)
    client = stack.client()
    assert subsidies(client) == EXPECTED_SUBSIDIES
    before = snapshot(client)

    held = stack.cli("status")
    assert held.returncode == 0 and "projection lease: held" in held.stderr, held.stderr
    refused = stack.rebuild()  # the service is running: it holds the projection
    assert refused.returncode == 3, refused.stderr + refused.stdout
    message = " ".join(refused.stderr.split())  # rich wraps lines to the terminal's width
    assert "held by another process" in message and "Stop every reporting replica" in message
    assert snapshot(client) == before  # nothing was reset

    stack.reporting.stop()
    assert "projection lease: free" in stack.cli("status").stderr
    result = stack.rebuild()
    assert result.returncode == 0, result.stderr + result.stdout
    assert "subsidy feed unavailable" not in result.stderr
    stack.start_reporting()
    both_feeds_applied(stack)
    client = stack.client()
    assert subsidies(client) == EXPECTED_SUBSIDIES  # awards that never changed are still counted
    assert snapshot(client) == before
