"""`tcr-registry import FILE --point ID` as a real process on SQLite and PostgreSQL: it registers the rows with a
writer of its own, writes the rejected rows next to the file, and a second run registers nothing twice. The
registry service reads what it imported afterwards.

(The service is stopped while the command runs: on SQLite, two processes that write at the same moment may see
"database is locked"; docs/imports.md says to import into a SQLite registry through POST /v1/imports.)"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys

from tests.registry.test_import import contract_id, csv_file, row
from tests.support.registry import RegistryDriver, registry_in_process


def run_cli(database_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TCR_REGISTRY_DATABASE_URL": database_url, "COLUMNS": "160"}
    return subprocess.run(
        [sys.executable, "-m", "tcr_registry.adapters.cli", "import", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_the_import_command_registers_rows_and_writes_the_rejected_ones(database_url, tmp_path):
    async with registry_in_process(database_url, tmp_path) as client:
        point = await RegistryDriver(client).point("6401")
    batch = tmp_path / "清单.csv"
    batch.write_bytes(csv_file([row("K-1", certify="yes"), row("K-2"), row("K-3", signed_on="2025-13-01")]))

    done = run_cli(database_url, str(batch), "--point", point.id)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "import done" in done.stdout and "3 rows, 2 registered (1 certified)" in done.stdout, done.stdout
    assert "rows/s" in done.stdout, done.stdout
    rejected = list(csv.reader(io.StringIO((tmp_path / "清单.csv.rejected.csv").read_text(encoding="utf-8-sig"))))
    assert [line[:2] for line in rejected] == [["row", "field"], ["4", "signed_on"]]

    again = run_cli(database_url, str(batch), "--point", point.id)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "0 registered (0 certified), 2 already registered, 1 rejected" in again.stdout, again.stdout

    async with registry_in_process(database_url, tmp_path) as client:
        registry = RegistryDriver(client)
        for ref, status in (("K-1", "certified"), ("K-2", "submitted")):
            r = await client.get(f"/v1/contracts/{contract_id(point.id, ref)}", headers=point.headers)
            assert r.status_code == 200 and r.json()["status"] == status, r.text
        types = [event["type"].split(".")[3] for event in await registry.feed(0)]
        assert sorted(types) == ["certified", "submitted", "submitted"]  # the second run added nothing


async def test_the_import_command_refuses_an_unknown_point(database_url, tmp_path):
    batch = tmp_path / "batch.csv"
    batch.write_bytes(csv_file([row("U-1")]))
    refused = run_cli(database_url, str(batch), "--point", "no-such-point")
    assert refused.returncode == 1 and "no registration point" in refused.stdout, refused.stdout
