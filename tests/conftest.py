"""Fixtures every suite shares: a fresh PostgreSQL database per run, and the two storage backends."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support import postgres

# One master key for every service a test starts (in-process or uvicorn, which inherit the environment), as the
# replicas of a deployment share theirs: two registries on one database must open each other's sealed values.
os.environ.setdefault("TCR_MASTER_KEY", "dGNyLXRlc3RzLW9ubHktbWFzdGVyLWtleS0zMmJ5dGU=")

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


@pytest.fixture(scope="session")
def postgres_server() -> None:
    problem = postgres.server_problem()
    if problem:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{problem} (CI=true: PostgreSQL tests may not be skipped)", pytrace=False)
        pytest.skip(problem)


@pytest.fixture
def make_pg_database(postgres_server):
    """Factory for fresh, empty PostgreSQL databases, dropped after the test."""
    created: list[str] = []

    def make(prefix: str = "tcr_test") -> str:
        url = postgres.create_database(prefix)
        created.append(url)
        return url

    yield make
    for url in created:
        postgres.drop_database(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """A fresh empty database of each backend: the same tests run against SQLite and PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    return request.getfixturevalue("make_pg_database")()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
