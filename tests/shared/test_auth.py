"""Keys: revocation reaches every service within a second, and no key a client can send makes a 500."""

from __future__ import annotations

import httpx
import pytest
from fastapi import Depends, FastAPI, Request

from tcr_shared.platform.auth import (
    ADMIN_KEY_ID,
    MAX_CACHE_SECONDS,
    Authenticator,
    Principal,
    RegistryKeyResolver,
    RegistryKeyStatus,
)
from tcr_shared.platform.problems import Problem, install_problem_handlers

ADMIN_KEY = "admin-key-for-auth-tests"


class FakeRegistry:
    """The registry's contract as the other services use it: `GET /v1/whoami` and `GET /v1/api-keys/{id}`."""

    def __init__(self) -> None:
        self.keys = {"tcr_good": "k1"}
        self.revoked: set[str] = set()
        self.asked = 0
        self.app = FastAPI()
        install_problem_handlers(self.app)

        @self.app.get("/v1/whoami")
        async def whoami(request: Request) -> dict:
            self.asked += 1
            secret = request.headers.get("authorization", "").removeprefix("Bearer ")
            key_id = self.keys.get(secret)
            if key_id is None or key_id in self.revoked:
                raise Problem(401, "unknown")
            return {"key_id": key_id, "role": "partner"}

        @self.app.get("/v1/api-keys/{key_id}")
        async def api_key(key_id: str, request: Request) -> dict:
            self.asked += 1
            assert request.headers["authorization"] == f"Bearer {ADMIN_KEY}"
            if key_id not in self.keys.values():
                raise Problem(404, "no such key")
            return {"id": key_id, "revoked_at": "2026-12-02T10:00:00Z" if key_id in self.revoked else None}

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://registry")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_revoked_key_is_refused_within_a_second():
    registry, clock = FakeRegistry(), Clock()
    resolver = RegistryKeyResolver("http://registry", registry.client(), ttl=60, clock=clock)  # asks for 60 s...
    assert (await resolver("tcr_good")).key_id == "k1"
    registry.revoked.add("k1")
    clock.now += MAX_CACHE_SECONDS / 2
    assert (await resolver("tcr_good")) is not None  # cached: the registry is not asked on every request
    assert registry.asked == 1
    clock.now += MAX_CACHE_SECONDS / 2 + 0.001  # ...but gets at most MAX_CACHE_SECONDS
    assert (await resolver("tcr_good")) is None
    registry.revoked.clear()
    clock.now += MAX_CACHE_SECONDS / 2
    assert (await resolver("tcr_good")) is None  # negative answers are cached too, as briefly
    clock.now += MAX_CACHE_SECONDS / 2 + 0.001
    assert (await resolver("tcr_good")).key_id == "k1"
    assert registry.asked == 3
    assert MAX_CACHE_SECONDS <= 1.0


async def test_key_status_for_the_webhook_worker():
    registry, clock = FakeRegistry(), Clock()
    active = RegistryKeyStatus("http://registry", ADMIN_KEY, registry.client(), clock=clock)
    assert await active("k1") is True
    assert await active(ADMIN_KEY_ID) is True
    assert await active("never-issued") is False
    registry.revoked.add("k1")
    assert await active("k1") is True  # within the cache
    clock.now += MAX_CACHE_SECONDS + 0.001
    assert await active("k1") is False


async def test_key_status_raises_when_the_registry_cannot_say():
    broken = FastAPI()

    @broken.get("/v1/api-keys/{key_id}")
    async def fail(key_id: str) -> dict:
        raise Problem(503, "down")

    install_problem_handlers(broken)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=broken), base_url="http://registry")
    with pytest.raises(RuntimeError, match="503"):
        await RegistryKeyStatus("http://registry", ADMIN_KEY, client)("k1")


def service_app(resolver) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    auth = Authenticator(ADMIN_KEY, resolver)

    @app.get("/whoami")
    async def whoami(principal: Principal = Depends(auth.require("partner"))) -> dict:
        return {"key_id": principal.key_id}

    return app


@pytest.mark.parametrize(
    "header",
    [
        "Bearer ключ".encode(),
        "Bearer clé".encode("latin-1"),
        "Bearer 秘密の鍵".encode(),
        b"Bearer tcr_good\x7f",
        b"Bearer \xff\xfe",
        "Bearer a\u00a0b".encode(),
        b"Bearer " + b"x" * 5000,
    ],
)
async def test_any_bearer_value_a_client_sends_is_a_401_not_a_500(header):
    registry = FakeRegistry()
    resolver = RegistryKeyResolver("http://registry", registry.client())
    app = service_app(resolver)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc") as client:
        response = await client.get("/whoami", headers=[(b"authorization", header)])
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert registry.asked == 0  # nothing the registry could have issued is sent to it
    assert await resolver("ключ") is None  # the resolver alone (the reporting fast path) refuses it too


async def test_good_keys_still_work():
    registry = FakeRegistry()
    app = service_app(RegistryKeyResolver("http://registry", registry.client()))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc") as client:
        assert (await client.get("/whoami", headers={"Authorization": "Bearer tcr_good"})).json() == {"key_id": "k1"}
        admin = await client.get("/whoami", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        assert admin.json() == {"key_id": ADMIN_KEY_ID}
