"""What every service's audit trail must show (tcr_shared.platform.audit), asked over HTTP, and its append-only
table refusing to be rewritten, asked through SQL."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text


async def trail(client, admin: dict[str, str], **params) -> list[dict]:
    """Every entry matching `params` (`from`, `to`, `key_id`, `action`), following the pages."""
    entries, token = [], None
    while True:
        page_params = {**params, "limit": 2, **({"page_token": token} if token else {})}
        response = await client.get("/v1/audit", params=page_params, headers=admin)
        assert response.status_code == 200, response.text
        entries += response.json()["entries"]
        token = response.json()["next_page_token"]
        if token is None:
            return entries


def assert_append_only(sync_url: str) -> None:
    """UPDATE and DELETE are refused by the table's triggers, and the entries stay."""
    # On SQLite the running service may hold the write lock for a moment: wait for it, so that what refuses the
    # statement is the trigger, not a busy database.
    engine = create_engine(sync_url, connect_args={"timeout": 30} if sync_url.startswith("sqlite") else {})
    try:
        with engine.connect() as conn:
            before = conn.execute(text("SELECT count(*) FROM audit_log")).scalar_one()
        assert before > 0
        for statement in ("UPDATE audit_log SET outcome = 200, key_id = 'someone-else'", "DELETE FROM audit_log"):
            with pytest.raises(Exception, match="append-only"), engine.begin() as conn:
                conn.execute(text(statement))
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM audit_log")).scalar_one() == before
    finally:
        engine.dispose()
