"""Operations (issue 12) in real reporting processes: /readyz follows the database (a throwaway PostgreSQL cluster
stopped and started again), /v1/status is honest about feeds it cannot read (`state`, `lag` null), and of two
replicas on one database exactly one applies the feeds (`role`), the other takes over when it dies."""

from __future__ import annotations

import secrets
import time

import httpx
import pytest
from fastapi import FastAPI

from tests.reporting.builders import Feed, terms
from tests.reporting.conftest import REPORTING_APP, make_stack
from tests.reporting.fake_subsidy import FakeSubsidy, Served
from tests.reporting.registry_api import org
from tests.support import postgres, servers
from tests.support.processes import free_port, start_service


def eventually(check, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out: {what}")
        time.sleep(0.1)


def ready(url: str) -> int:
    try:
        return httpx.get(f"{url}/readyz", timeout=10).status_code
    except httpx.HTTPError:
        return 0


@pytest.fixture
def cluster():
    if servers.postgres_bin_dir() is None:
        servers.unavailable("no PostgreSQL binaries to start a throwaway cluster")
    cluster = servers.PostgresCluster.create().start()
    yield cluster
    cluster.destroy()


def test_readyz_follows_the_database_and_status_is_honest_about_an_unreadable_feed(cluster, tmp_path) -> None:
    import psycopg

    with psycopg.connect(cluster.admin_dsn, autocommit=True) as conn:
        conn.execute("CREATE DATABASE reporting")
    admin = f"admin_{secrets.token_hex(8)}"
    nowhere = f"http://127.0.0.1:{free_port()}"  # no registry, no subsidy service: feeds that cannot be read
    env = {
        "TCR_ADMIN_KEY": admin,
        "TCR_DATA_DIR": str(tmp_path / "var"),
        "TCR_REPORTING_DATABASE_URL": cluster.url("reporting"),
        "TCR_REGISTRY_URL": nowhere,
        "TCR_SUBSIDY_URL": nowhere,
    }
    reporting = start_service("reporting-outage", REPORTING_APP, env, tmp_path / "logs")
    try:
        assert eventually(lambda: ready(reporting.url) == 200, "ready at start")
        status = httpx.get(f"{reporting.url}/v1/status", headers={"Authorization": f"Bearer {admin}"}).json()
        assert status["role"] == "leader" and status["lease"]["lease"] == "reporting-projection"
        registry = eventually(
            lambda: (
                (
                    f := httpx.get(f"{reporting.url}/v1/status", headers={"Authorization": f"Bearer {admin}"}).json()[
                        "feeds"
                    ]["registry"]
                )["state"]
                == "unreachable"
                and f
            ),
            "the registry feed to be reported unreachable",
        )
        # nothing is known of the head: no lag is claimed
        assert (registry["head"], registry["lag"], registry["reachable"]) == (None, None, False)
        assert registry["error"] and registry["position"] == 0

        cluster.stop("immediate")
        eventually(lambda: ready(reporting.url) == 503, "not ready while PostgreSQL is down")
        assert httpx.get(f"{reporting.url}/healthz").status_code == 200  # alive: no restart wanted
        cluster.start()
        eventually(lambda: ready(reporting.url) == 200, "ready again by itself")
    finally:
        reporting.stop()


@pytest.fixture
def two_replicas(tmp_path_factory):
    stack = make_stack(tmp_path_factory.mktemp("replicas"), None)
    url = None
    try:
        url = postgres.create_database("tcr_reporting_replicas")
        env = {**stack.reporting_env, "TCR_REPORTING_DATABASE_URL": url}
        replicas = [start_service(f"reporting-{i}", REPORTING_APP, env, stack.log_dir) for i in range(2)]
        yield stack, replicas
        for replica in replicas:
            replica.kill()
    finally:
        stack.close()
        if url:
            postgres.drop_database(url)


def test_exactly_one_replica_applies_the_feeds_and_a_standby_takes_over(postgres_server, two_replicas) -> None:
    stack, replicas = two_replicas
    auth = {"Authorization": f"Bearer {stack.admin_key}"}

    def role(replica) -> str:
        return httpx.get(f"{replica.url}/v1/status", headers=auth, timeout=10).json()["role"]

    def outflow(replica, code: str) -> str:
        body = httpx.get(f"{replica.url}/v1/regions/{code}/metrics", params={"year": 2025}, headers=auth).json()
        return body["outflow"]["amount"]

    roles = eventually(lambda: sorted(r := [role(x) for x in replicas]) == ["leader", "standby"] and r, "roles")
    leader, standby = (replicas[0], replicas[1]) if roles[0] == "leader" else (replicas[1], replicas[0])
    stack.registry_api.contract(org("640104"), org("640181"), "100.00", "80.00", "2025-03-01T09:00:00+08:00")
    for replica in (leader, standby):  # the standby serves the figures the leader wrote
        eventually(lambda r=replica: outflow(r, "640104") == "100.00", "both replicas to show the contract")
    assert role(standby) == "standby"

    leader.kill()  # SIGKILL: its lock connection dies with it
    started = time.monotonic()
    eventually(lambda: role(standby) == "leader", "the standby to take over", timeout=5)
    assert time.monotonic() - started < 5
    stack.registry_api.contract(org("640302"), org("640181"), "30.00", "20.00", "2025-03-02T09:00:00+08:00")
    eventually(lambda: outflow(standby, "640302") == "30.00", "the new leader to apply the feed")
    assert outflow(standby, "640000") == "130.00"  # each contract counted once


def stuck_publisher() -> FastAPI:
    """A registry feed whose first event the projection cannot apply (an unknown category): the edge of the
    reporting service's world, standing in for an event a projection bug refuses."""
    feed = Feed()
    bad = terms("640104", "640181", "10.00", "8.00")
    bad["category"] = "alchemy"
    feed.certify("k1", bad, 2025)
    events = [e.model_dump(mode="json") for e in feed.events]
    app = FastAPI()

    @app.get("/v1/events")
    async def page(after: int = 0, limit: int = 1000, wait: float = 0.0) -> dict:
        return {
            "events": [e for e in events if e["position"] > after][:limit],
            "next_after": feed.position,
            "head": feed.position,
        }

    return app


def test_a_stalled_follower_makes_the_replica_not_ready_and_says_where(tmp_path) -> None:
    admin = f"admin_{secrets.token_hex(8)}"
    fake = FakeSubsidy()  # its app has no feed: the subsidy feed is simply unreachable
    with Served(fake) as subsidy, Served(stuck_publisher()) as registry:
        env = {
            "TCR_ADMIN_KEY": admin,
            "TCR_DATA_DIR": str(tmp_path / "var"),
            "TCR_REPORTING_DATABASE_URL": f"sqlite:///{tmp_path / 'reporting.db'}",
            "TCR_REGISTRY_URL": registry.url,
            "TCR_SUBSIDY_URL": subsidy.url,
            "TCR_FOLLOWER_STALL_AFTER": "1",
        }
        reporting = start_service("reporting-stalled", REPORTING_APP, env, tmp_path / "logs")
        auth = {"Authorization": f"Bearer {admin}"}
        try:
            eventually(lambda: ready(reporting.url) == 503, "not ready once the follower is stalled")
            feed = httpx.get(f"{reporting.url}/v1/status", headers=auth).json()["feeds"]["registry"]
            assert feed["state"] == "stalled" and feed["stalled_since"] is not None
            assert feed["position"] == 0 and feed["head"] == 2 and feed["lag"] == 2  # never skipped
            assert feed["stuck"]["event_position"] == 1 and "alchemy" in feed["stuck"]["error"]
            assert "alchemy" in feed["error"]
            metrics = httpx.get(f"{reporting.url}/metrics").text
            stalled = next(
                line
                for line in metrics.splitlines()
                if line.startswith('tcr_follower_stalled_seconds{feed="registry"}')
            )
            assert float(stalled.rsplit(" ", 1)[1]) > 0
            assert httpx.get(f"{reporting.url}/healthz").status_code == 200
        finally:
            reporting.stop()
