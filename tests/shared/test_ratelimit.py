"""Rate limits (issue 11, point 5): failed authentications per address and per presented key end in a 429 with
Retry-After and a lockout; a quota per key; counts shared by replicas through Redis."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest
from fastapi import Depends, FastAPI

from tcr_shared.platform.auth import Authenticator, Principal
from tcr_shared.platform.problems import install_problem_handlers
from tcr_shared.platform.ratelimit import RateLimits, RateLimitSettings, storage_uri

ADMIN_KEY = "tcr_admin-key-for-limits"
KEYS = {"tcr_alpha": "alpha", "tcr_beta": "beta"}


async def resolve(secret: str) -> Principal | None:
    key_id = KEYS.get(secret)
    return Principal(key_id=key_id, role="partner") if key_id else None


def settings(storage: str, **overrides) -> RateLimitSettings:
    values = dict(
        storage=storage,
        failures_per_address="5/minute",
        failures_per_key="3/minute",
        lockout_seconds=60,
        namespace=f"tcr-test-{uuid.uuid4().hex}",  # a fresh set of counters in the shared Redis
    )
    return RateLimitSettings(**{**values, **overrides})


def service(limits: RateLimits) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    auth = Authenticator(ADMIN_KEY, resolve, limits)

    @app.get("/thing")
    async def thing(principal: Principal = Depends(auth.require("partner"))) -> dict:
        return {"key_id": principal.key_id}

    return app


async def call(app: FastAPI, secret: str | None, address: str = "203.0.113.1") -> httpx.Response:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        return await client.get("/thing", headers=headers)


def assert_429(response: httpx.Response, upto: int) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert 1 <= int(response.headers["retry-after"]) <= upto
    assert response.json()["status"] == 429


async def test_failures_from_one_address_lock_it_out(rate_limit_storage):
    app = service(RateLimits(settings(rate_limit_storage)))
    for i in range(4):
        assert (await call(app, f"tcr_wrong{i}")).status_code == 401
    assert (await call(app, None)).status_code == 401  # no key at all counts as a failure too
    assert_429(await call(app, "tcr_wrong5"), upto=60)  # the failure that crosses the limit
    # Locked out: even the right key is refused without being checked, so a guess cannot be confirmed.
    assert_429(await call(app, "tcr_alpha"), upto=60)
    assert (await call(app, "tcr_alpha", address="198.51.100.9")).json() == {"key_id": "alpha"}


async def test_failures_presenting_one_key_lock_that_key_out_from_every_address(rate_limit_storage):
    app = service(RateLimits(settings(rate_limit_storage)))
    for i in range(3):
        assert (await call(app, "tcr_revoked", address=f"192.0.2.{i}")).status_code == 401
    assert_429(await call(app, "tcr_revoked", address="192.0.2.99"), upto=60)
    assert_429(await call(app, "tcr_revoked", address="192.0.2.100"), upto=60)
    assert (await call(app, "tcr_alpha", address="192.0.2.101")).status_code == 200


async def test_quota_per_key(rate_limit_storage):
    app = service(RateLimits(settings(rate_limit_storage, per_key="3/minute")))
    for _ in range(3):
        assert (await call(app, "tcr_alpha")).status_code == 200
    assert_429(await call(app, "tcr_alpha"), upto=60)
    assert (await call(app, "tcr_beta")).status_code == 200  # another key has its own quota
    assert (await call(app, ADMIN_KEY)).status_code == 200


async def test_no_quota_unless_configured(rate_limit_storage):
    app = service(RateLimits(settings(rate_limit_storage)))
    for _ in range(30):
        assert (await call(app, "tcr_alpha")).status_code == 200


async def test_the_lockout_ends(rate_limit_storage):
    app = service(RateLimits(settings(rate_limit_storage, failures_per_address="1/minute", lockout_seconds=1)))
    assert (await call(app, "tcr_wrong")).status_code == 401
    assert_429(await call(app, "tcr_wrong2"), upto=1)
    deadline = time.monotonic() + 10
    while (response := await call(app, "tcr_alpha")).status_code == 429 and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert response.status_code == 200


async def test_replicas_share_counts_through_redis(redis_server):
    shared = settings(redis_server, per_key="4/minute")
    replicas = [service(RateLimits(shared)), service(RateLimits(shared))]
    for i in range(4):  # alternating between the two replicas
        assert (await call(replicas[i % 2], "tcr_alpha")).status_code == 200
    assert_429(await call(replicas[0], "tcr_alpha"), upto=60)
    assert_429(await call(replicas[1], "tcr_alpha"), upto=60)
    for i in range(5):
        assert (await call(replicas[i % 2], f"tcr_wrong{i}")).status_code == 401
    assert_429(await call(replicas[0], "tcr_wrong9"), upto=60)
    assert_429(await call(replicas[1], "tcr_beta"), upto=60)  # the address is locked out on both


async def test_memory_storage_is_per_process():
    one, two = (service(RateLimits(settings("memory://", per_key="2/minute"))) for _ in range(2))
    for app in (one, one, two, two):
        assert (await call(app, "tcr_alpha")).status_code == 200


def test_storage_setting():
    assert storage_uri("memory://") == "async+memory://"
    assert storage_uri("redis://127.0.0.1:6379/0") == "async+redis://127.0.0.1:6379/0"
    with pytest.raises(ValueError, match="TCR_RATE_LIMIT_STORAGE"):
        storage_uri("memcached://x")


async def test_an_unreachable_storage_fails_open():
    limits = RateLimits(settings("redis://127.0.0.1:1/0", per_key="1/minute"))
    app = service(limits)
    assert (await call(app, "tcr_alpha")).status_code == 200
    assert (await call(app, "tcr_alpha")).status_code == 200
    assert (await call(app, "tcr_wrong")).status_code == 401


async def test_trusted_networks_are_not_locked_out_for_their_clients_failures(rate_limit_storage):
    """The subsidy and reporting services ask the registry about their clients' keys from their own address."""
    app = service(RateLimits(settings(rate_limit_storage, trusted_networks="10.0.5.0/24")))
    for i in range(8):
        assert (await call(app, f"tcr_wrong{i}", address="10.0.5.7")).status_code == 401
    assert (await call(app, "tcr_alpha", address="10.0.5.7")).status_code == 200
    for _ in range(3):
        assert (await call(app, "tcr_same_wrong", address="10.0.5.7")).status_code == 401
    assert_429(await call(app, "tcr_same_wrong", address="10.0.5.7"), upto=60)  # per key still counts
    with pytest.raises(ValueError, match="TRUSTED_NETWORKS"):
        RateLimitSettings(trusted_networks="10.0.5.0/33")
