"""The backup procedure of docs/operations.md: a pg_dump of the registry database is the backup that matters;
restored into a new database, it brings the registry back, and subsidy and reporting rebuilt from it (fresh, empty
databases) answer exactly as the originals did. Real uvicorn processes on PostgreSQL."""

from __future__ import annotations

import shutil
import subprocess
import time

import httpx
import pytest

from tests.support.processes import ServiceProcess, start_service
from tests.support.servers import postgres_bin_dir

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ADMIN_KEY = "test-admin-key-backup"
HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}"}
YEARS = range(2021, 2027)


def pg_tool(name: str) -> str:
    """pg_dump / pg_restore of the same installation as the server the tests use, else the one on PATH."""
    bin_dir = postgres_bin_dir()
    if bin_dir and (bin_dir / name).exists():
        return str(bin_dir / name)
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} is missing: it is part of every PostgreSQL installation")
    return found


def start_stack(registry_db: str, subsidy_db: str, reporting_db: str, log_dir, *, demo: bool) -> list[ServiceProcess]:
    common = {"TCR_ADMIN_KEY": ADMIN_KEY, "TCR_DATA_DIR": str(log_dir / "data"), "TCR_ACCESS_LOG": "0"}
    registry = start_service(
        "registry",
        "tcr_registry.bootstrap:create_app",
        {**common, "TCR_REGISTRY_DATABASE_URL": registry_db, "TCR_DEMO": "1" if demo else "0",
         "TCR_DEMO_CONTRACTS": "120"},
        log_dir,
    )  # fmt: skip
    subsidy = start_service(
        "subsidy",
        "tcr_subsidy.bootstrap:create_app",
        {**common, "TCR_SUBSIDY_DATABASE_URL": subsidy_db, "TCR_REGISTRY_URL": registry.url},
        log_dir,
    )
    reporting = start_service(
        "reporting",
        "tcr_reporting.bootstrap:create_app",
        {**common, "TCR_REPORTING_DATABASE_URL": reporting_db, "TCR_REGISTRY_URL": registry.url,
         "TCR_SUBSIDY_URL": subsidy.url, "TCR_FEED_KEY": ADMIN_KEY},
        log_dir,
    )  # fmt: skip
    return [registry, subsidy, reporting]


def caught_up(stack: list[ServiceProcess]) -> None:
    """Wait until subsidy has applied the registry's head and reporting both feeds' heads."""
    registry, subsidy, reporting = stack
    deadline = time.monotonic() + 120
    with httpx.Client(headers=HEADERS, timeout=30) as client:
        while True:
            head = client.get(f"{registry.url}/v1/events", params={"after": 0, "limit": 1}).json()["head"]
            sub = client.get(f"{subsidy.url}/v1/status").json()
            award_head = sub["award_feed"]["head"]
            rep = client.get(f"{reporting.url}/v1/status").json()["feeds"]
            positions = sorted(feed["position"] for feed in rep.values())
            if sub["feeds"][0]["position"] >= head > 0 and positions == sorted([head, award_head]):
                return
            assert time.monotonic() < deadline, f"not caught up: head {head}, subsidy {sub}, reporting {rep}"
            time.sleep(0.2)


def answers(stack: list[ServiceProcess]) -> dict:
    """What subsidy and reporting answer: every award (all pages) and the annual report of each year."""
    _, subsidy, reporting = stack
    found: dict = {"awards": [], "reports": {}}
    with httpx.Client(headers=HEADERS, timeout=30) as client:
        token = None
        while True:
            params = {"limit": 1000, **({"page_token": token} if token else {})}
            page = client.get(f"{subsidy.url}/v1/awards", params=params).json()
            found["awards"] += page["awards"]
            token = page["next_page_token"]
            if not token:
                break
        for year in YEARS:
            r = client.get(f"{reporting.url}/v1/reports/annual/{year}")
            body = r.json()
            body.pop("generated_at", None)  # when the answer was made: the one thing that differs by design
            found["reports"][year] = (r.status_code, body)
    return found


def stop(stack: list[ServiceProcess]) -> None:
    for service in reversed(stack):
        service.stop()


def test_a_registry_dump_restores_the_whole_system(make_pg_database, tmp_path) -> None:
    registry_db, subsidy_db, reporting_db = (make_pg_database(f"tcr_backup_{n}") for n in ("reg", "sub", "rep"))
    stack = start_stack(registry_db, subsidy_db, reporting_db, tmp_path / "before", demo=True)
    try:
        caught_up(stack)
        before = answers(stack)
        # the backup: taken while the services run (pg_dump reads one consistent snapshot)
        dump = tmp_path / "registry.dump"
        subprocess.run([pg_tool("pg_dump"), "-Fc", "-f", str(dump), "-d", registry_db], check=True)
    finally:
        stop(stack)
    assert len(before["awards"]) > 10 and any(code == 200 for code, _ in before["reports"].values())

    # the restore: a new registry database from the dump; subsidy and reporting start empty and rebuild
    restored = make_pg_database("tcr_backup_restored")
    subprocess.run([pg_tool("pg_restore"), "--no-owner", "--exit-on-error", "-d", restored, str(dump)], check=True)
    fresh_subsidy, fresh_reporting = make_pg_database("tcr_backup_sub2"), make_pg_database("tcr_backup_rep2")
    stack = start_stack(restored, fresh_subsidy, fresh_reporting, tmp_path / "after", demo=False)
    try:
        caught_up(stack)
        after = answers(stack)
    finally:
        stop(stack)
    assert after["awards"] == before["awards"]
    assert after["reports"] == before["reports"]
