"""The registry through a PostgreSQL outage (issue 12): /readyz fails while its database is unreachable and
recovers by itself; requests answer 503 problem+json with Retry-After (never 500, never a hang); once PostgreSQL is
back, writes, reads and the contract index (run under a leader lease that is lost and taken again) carry on.
A throwaway cluster that this module starts and stops; the registry is a real uvicorn process."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.support import servers
from tests.support.asserts import PROBLEM_JSON
from tests.support.processes import start_service
from tests.support.registry import ADMIN_KEY, REGISTRY_APP, auth, contract_body

ANSWER_BOUND = 15.0  # a request must answer within this while PostgreSQL is down (see tests/ops/test_outages.py)


@pytest.fixture(scope="module")
def cluster():
    if servers.postgres_bin_dir() is None:
        servers.unavailable("no PostgreSQL binaries to start a throwaway cluster")
    cluster = servers.PostgresCluster.create().start()
    yield cluster
    cluster.destroy()


def _until(probe, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_readyz_and_writes_through_a_database_outage(cluster, tmp_path):
    import psycopg

    with psycopg.connect(cluster.admin_dsn, autocommit=True) as conn:
        conn.execute("CREATE DATABASE registry_outage")
    env = {
        "TCR_REGISTRY_DATABASE_URL": cluster.url("registry_outage"),
        "TCR_DATA_DIR": str(tmp_path),
        "TCR_ADMIN_KEY": ADMIN_KEY,
        "TCR_DEMO": "0",
    }
    registry = start_service("registry-outage", REGISTRY_APP, env, tmp_path / "logs")
    try:
        with httpx.Client(base_url=registry.url, timeout=ANSWER_BOUND + 15) as client:
            point = client.post(
                "/v1/points", json={"number": "01", "name": "登记点", "jurisdiction": "6401"}, headers=auth(ADMIN_KEY)
            ).json()
            key = client.post("/v1/api-keys", json={"role": "point", "point_id": point["id"]}, headers=auth(ADMIN_KEY))
            headers = auth(key.json()["secret"])
            before = client.post("/v1/contracts", json=contract_body(), headers=headers)
            assert before.status_code == 201, before.text
            assert client.get("/readyz").status_code == 200

            cluster.stop("fast")
            not_ready = _until(lambda: client.get("/readyz").status_code == 503, "/readyz to fail")
            assert not_ready
            for method, path, body in (
                ("POST", "/v1/contracts", contract_body()),
                ("GET", f"/v1/contracts/{before.json()['id']}", None),
                ("GET", "/v1/contracts", None),
            ):
                started = time.monotonic()
                r = client.request(method, path, json=body, headers=headers)
                assert time.monotonic() - started < ANSWER_BOUND + 5, (path, "answered too late")
                assert r.status_code == 503, (path, r.status_code, r.text)
                assert r.headers["content-type"].startswith(PROBLEM_JSON) and r.headers["Retry-After"], r.headers
            assert client.get("/healthz").status_code == 200  # liveness is not readiness

            cluster.start()
            _until(lambda: client.get("/readyz").status_code == 200, "/readyz to recover", timeout=60)
            after = _until(
                lambda: (
                    (r := client.post("/v1/contracts", json=contract_body(), headers=headers)).status_code == 201 and r
                ),
                "a write to succeed again",
            )
            ids = {before.json()["id"], after.json()["id"]}
            listed = _until(
                lambda: ids <= {c["id"] for c in client.get("/v1/contracts", headers=headers).json()["contracts"]},
                "the contract index to carry on",
            )
            assert listed
    finally:
        registry.stop()
