"""examples/partner_sync.py keeps a partner's SQLite table in sync, resuming from its saved position."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

from tests.partners.conftest import ADMIN_KEY, append, feed_events
from tests.partners.events import registry_event
from tests.support.processes import ROOT


def sync(url: str, db) -> str:
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "partner_sync.py"),
            "--url",
            url,
            "--key",
            ADMIN_KEY,
            "--db",
            str(db),
            "--once",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_partner_sync_example_catches_up_and_resumes(http, start_publisher, tmp_path):
    publisher = start_publisher()
    db = tmp_path / "partner.db"
    first = [registry_event("certified", "640104"), registry_event("certified", "640205")]
    await append(http, publisher, first)
    assert "applied 2 events; 2 contracts" in sync(publisher.url, db)

    revoked = registry_event("revoked")
    revoked["subject"] = first[0]["subject"]
    revoked["data"]["contract_id"] = first[0]["data"]["contract_id"]
    await append(http, publisher, [revoked, registry_event("submitted", "640302")])
    assert "applied 2 events; 3 contracts" in sync(publisher.url, db)  # only the new ones

    events = await feed_events(http, publisher)
    rows = dict(sqlite3.connect(db).execute("SELECT contract_id, status FROM contracts").fetchall())
    assert rows == {
        first[0]["data"]["contract_id"]: "revoked",
        first[1]["data"]["contract_id"]: "certified",
        events[3]["data"]["contract_id"]: "submitted",
    }
    assert sqlite3.connect(db).execute("SELECT position FROM sync_state").fetchone()[0] == events[-1]["position"]
