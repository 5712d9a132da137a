"""The short version of `make chaos` (tests/chaos/harness.py) inside `make test`: the same faults and checks with
shorter load phases. Known contradictions (issue 12) are printed and counted, not failed on."""

from __future__ import annotations

import pytest

from tests.chaos import harness
from tests.support import servers

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_faults_under_load_lose_nothing_acknowledged(artifacts_dir, capsys) -> None:
    if servers.postgres_bin_dir() is None:
        servers.unavailable("no PostgreSQL binaries to start the throwaway cluster the fault suite restarts")
    findings = harness.run(harness.SHORT, artifacts_dir / "chaos", say=lambda line: None)
    text = harness.report(findings)
    with capsys.disabled():
        print("\n" + text)
    total = sum(row["acknowledged"] for row in findings.rows.values())
    assert total > 50, f"too little load to prove anything:\n{text}"
    assert not findings.failed, text
