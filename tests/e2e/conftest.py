"""A registry as a real uvicorn process on its own PostgreSQL database, for the e2e tests that talk to it."""

from __future__ import annotations

import pytest

from tests.support.processes import start_service
from tests.support.registry import ADMIN_KEY, REGISTRY_APP


@pytest.fixture
def registry_process(make_pg_database, tmp_path, artifacts_dir, request):
    url = make_pg_database(f"tcr_{request.module.__name__.rsplit('.', 1)[-1]}")
    service = start_service(
        "registry",
        REGISTRY_APP,
        {
            "TCR_REGISTRY_DATABASE_URL": url,
            "TCR_ADMIN_KEY": ADMIN_KEY,
            "TCR_DATA_DIR": str(tmp_path / "var"),
            "TCR_DEMO": "0",
            "TCR_SSE_HEARTBEAT": "0.5",
        },
        artifacts_dir / "e2e-logs",
    )
    yield service
    service.kill()
