"""`tcr-registry import FILE --point ID`, as a real process beside the running registry (on SQLite and
PostgreSQL): it registers the rows with a writer of its own, writes the rejected rows next to the file, and a
second run registers nothing twice."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys

from tests.registry.test_import import contract_id, csv_file, row


def run_cli(database_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TCR_REGISTRY_DATABASE_URL": database_url, "COLUMNS": "160"}
    return subprocess.run(
        [sys.executable, "-m", "tcr_registry.adapters.cli", "import", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_the_import_command_registers_rows_and_writes_the_rejected_ones(registry, tmp_path):
    point = await registry.point("6401")
    batch = tmp_path / "清单.csv"
    batch.write_bytes(csv_file([row("K-1", certify="yes"), row("K-2"), row("K-3", signed_on="2025-13-01")]))

    done = run_cli(registry.url, str(batch), "--point", point.id)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "import done" in done.stdout and "3 rows, 2 registered (1 certified)" in done.stdout, done.stdout
    assert "rows/s" in done.stdout, done.stdout
    rejected = list(csv.reader(io.StringIO((tmp_path / "清单.csv.rejected.csv").read_text(encoding="utf-8-sig"))))
    assert [line[:2] for line in rejected] == [["row", "field"], ["4", "signed_on"]]
    for ref, status in (("K-1", "certified"), ("K-2", "submitted")):
        r = await registry.client.get(f"/v1/contracts/{contract_id(point.id, ref)}", headers=point.headers)
        assert r.status_code == 200 and r.json()["status"] == status, r.text

    head = await registry.head()
    again = run_cli(registry.url, str(batch), "--point", point.id)
    assert again.returncode == 0 and "0 registered (0 certified), 2 already registered, 1 rejected" in again.stdout
    assert await registry.head() == head


async def test_the_import_command_refuses_an_unknown_point(registry, tmp_path):
    batch = tmp_path / "batch.csv"
    batch.write_bytes(csv_file([row("U-1")]))
    refused = run_cli(registry.url, str(batch), "--point", "no-such-point")
    assert refused.returncode == 1 and "no registration point" in refused.stdout, refused.stdout
