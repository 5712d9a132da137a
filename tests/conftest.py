"""Fixtures every suite shares: a PostgreSQL server (the one configured, else a throwaway cluster the session
starts), a fresh database per test, the two storage backends, and a NATS server (likewise)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.support import postgres, servers
from tests.support.servers import in_ci, unavailable

# One master key for every service a test starts (in-process or uvicorn, which inherit the environment), as the
# replicas of a deployment share theirs: two registries on one database must open each other's sealed values.
os.environ.setdefault("TCR_MASTER_KEY", "dGNyLXRlc3RzLW9ubHktbWFzdGVyLWtleS0zMmJ5dGU=")

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
NATS_URL = os.environ.get("TCR_TEST_NATS_URL", "nats://127.0.0.1:4222")
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="session")
def postgres_server():
    """The configured PostgreSQL (TCR_TEST_PG_ADMIN, default 127.0.0.1:5432); when it is unreachable, a throwaway
    cluster started from the binaries on the machine or from the pgserver package, removed at the end."""
    problem = postgres.server_problem()
    if problem is None:
        yield postgres.ADMIN_DSN
        return
    try:
        cluster = servers.PostgresCluster.create().start()
    except Exception as exc:
        unavailable(f"{problem}; no throwaway cluster either: {exc}")
    configured = postgres.ADMIN_DSN
    postgres.use_admin(cluster.admin_dsn)
    try:
        yield cluster.admin_dsn
    finally:
        postgres.use_admin(configured)
        cluster.destroy()


@pytest.fixture(scope="session")
def nats_server():
    """The configured NATS (TCR_TEST_NATS_URL, default 127.0.0.1:4222); when it is unreachable, a throwaway
    nats-server with JetStream on a free port."""
    host, _, port = NATS_URL.removeprefix("nats://").partition(":")
    problem = servers.tcp_problem(host, int(port or 4222))
    if problem is None:
        yield NATS_URL
        return
    try:
        server = servers.NatsServer.start()
    except Exception as exc:
        unavailable(f"NATS at {NATS_URL} is unreachable ({problem}); no throwaway server either: {exc}")
    try:
        yield server.url
    finally:
        server.destroy()


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


def pytest_collection_modifyitems(config, items) -> None:
    """Browser tests (modules that drive Playwright) need Debian's chromium. Without it (a user without sudo, whom
    `make browser` could not install it for) they skip with the reason locally and still fail under CI=true."""
    if in_ci() or shutil.which("chromium") or os.path.exists(CHROMIUM):
        return
    skip = pytest.mark.skip(reason="chromium is missing: run 'sudo apt-get install chromium fonts-noto-cjk' once")
    for item in items:
        module = getattr(item, "module", None)
        if module is not None and "async_playwright" in vars(module):
            item.add_marker(skip)
