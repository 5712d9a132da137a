"""The registry adopts the rate limits (issue 11, point 5): wrong keys from one address end in 429 with
Retry-After while a good key from another address still works; loopback (where subsidy and reporting ask
/v1/whoami with their clients' keys, on one host) is trusted unless TCR_RATE_LIMIT_TRUSTED_NETWORKS says else."""

from __future__ import annotations

import httpx
import pytest

from tests.support.asserts import assert_problem
from tests.support.registry import ADMIN, registry_in_process


@pytest.fixture
async def registry_app(tmp_path, monkeypatch):
    monkeypatch.setenv("TCR_RATE_LIMIT_FAILURES_PER_ADDRESS", "5/minute")
    monkeypatch.setenv("TCR_RATE_LIMIT_FAILURES_PER_KEY", "50/minute")
    monkeypatch.delenv("TCR_RATE_LIMIT_TRUSTED_NETWORKS", raising=False)
    async with registry_in_process(f"sqlite:///{tmp_path / 'registry.db'}", tmp_path) as client:
        yield client.app


async def whoami(app, key: str, address: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://registry.test") as client:
        return await client.get("/v1/whoami", headers={"Authorization": f"Bearer {key}"})


async def test_wrong_keys_from_one_address_reach_429_and_a_good_key_elsewhere_still_works(registry_app):
    for i in range(5):
        assert_problem(await whoami(registry_app, f"tcr_wrong{i}", "203.0.113.7"), 401)
    locked = await whoami(registry_app, "tcr_wrong5", "203.0.113.7")
    assert_problem(locked, 429)
    assert 1 <= int(locked.headers["retry-after"]) <= 60
    admin_key = ADMIN["Authorization"].removeprefix("Bearer ")
    assert (await whoami(registry_app, admin_key, "203.0.113.7")).status_code == 429  # locked: not even checked
    good = await whoami(registry_app, admin_key, "198.51.100.20")
    assert good.status_code == 200 and good.json()["role"] == "admin"


async def test_loopback_callers_are_not_locked_out_by_their_clients_wrong_keys(registry_app):
    for i in range(12):  # more than the per-address limit, as subsidy relays its clients' guesses
        assert_problem(await whoami(registry_app, f"tcr_relayed{i}", "127.0.0.1"), 401)
    admin_key = ADMIN["Authorization"].removeprefix("Bearer ")
    assert (await whoami(registry_app, admin_key, "127.0.0.1")).status_code == 200
