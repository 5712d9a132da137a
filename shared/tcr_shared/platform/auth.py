"""API keys: `Authorization: Bearer <key>`, roles, and how the followers learn who a key belongs to.

The registry issues keys and stores only their SHA-256; the subsidy and reporting services ask the registry
(`GET /v1/whoami`) and cache the answer at most `MAX_CACHE_SECONDS` (1 s), so a revoked key is refused
everywhere within a second. The bootstrap admin key (TCR_ADMIN_KEY) is known everywhere.

A key is printable ASCII (`new_secret` makes them so); anything else in the header - e.g. `Bearer ключ` - is a
key nobody issued and answers 401, never 500 (HTTP headers reach us as latin-1 text, httpx refuses to send it).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import quote

import httpx
from fastapi import Request

from tcr_shared.platform.problems import Problem
from tcr_shared.platform.ratelimit import RateLimits

ROLES = ("point", "partner", "analyst", "admin")


@dataclass(frozen=True)
class Principal:
    key_id: str
    role: str
    point_id: str | None = None
    jurisdiction: str | None = None  # four digits, e.g. 6401; 6400 for the whole region
    point_number: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


ADMIN_KEY_ID = "bootstrap-admin"


def new_secret(prefix: str = "tcr") -> str:
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


KeyResolver = Callable[[str], Awaitable[Principal | None]]
KeyActive = Callable[[str], Awaitable[bool]]  # key id -> not revoked (see RegistryKeyStatus)
MAX_CACHE_SECONDS = 1.0  # the longest any service trusts an answer about a key: revocation takes effect within it
_CACHE_ENTRIES = 10_000  # expired answers are dropped once the cache holds this many


def could_be_a_key(secret: str) -> bool:
    """Printable ASCII without spaces: every key tcr issues is; nothing else needs to be looked up."""
    return 0 < len(secret) <= 512 and secret.isascii() and secret.isprintable() and " " not in secret


def _unknown_key() -> Problem:
    return Problem(
        401,
        "This API key is not known or has been revoked.",
        headers={"WWW-Authenticate": 'Bearer realm="tcr", error="invalid_token"'},
    )


def bearer_secret(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Problem(
            401,
            "Send your API key as 'Authorization: Bearer <key>'.",
            headers={"WWW-Authenticate": 'Bearer realm="tcr"'},
        )
    return secret.strip()


def client_address(request: Request) -> str | None:
    """The client's address as the server saw it (behind a proxy: run uvicorn with --proxy-headers and
    --forwarded-allow-ips so that this is the real client, not the proxy)."""
    return request.client.host if request.client else None


class Authenticator:
    """The one check of an API key, for every service: `authenticate(secret)` says who it is (or raises a 401
    problem); `require(*roles)` is the FastAPI dependency that also checks the role (admin always passes).
    With `limits` (tcr_shared.platform.ratelimit.RateLimits) it also refuses with 429: addresses and keys locked
    out after repeated failures, and keys beyond their request quota."""

    def __init__(self, admin_key: str | None, resolve: KeyResolver, limits: RateLimits | None = None) -> None:
        self._admin_key = admin_key.encode() if admin_key else None
        self._resolve = resolve
        self.limits = limits

    async def authenticate(self, secret: str, *, client: str | None = None) -> Principal:
        """Who `secret` is; `client` (the caller's address) lets the rate limits count failures per address."""
        if self.limits is None:
            return await self._identify(secret)
        await self.limits.check_locked(client, secret)
        try:
            principal = await self._identify(secret)
        except Problem as problem:
            if problem.status == 401:
                await self.limits.failed(client, secret)  # 429 instead, when this failure crosses a limit
            raise
        await self.limits.spend(principal.key_id)
        return principal

    async def _identify(self, secret: str) -> Principal:
        if not could_be_a_key(secret):
            raise _unknown_key()
        # Compared as bytes: compare_digest refuses non-ASCII text.
        if self._admin_key and hmac.compare_digest(secret.encode(), self._admin_key):
            return Principal(key_id=ADMIN_KEY_ID, role="admin")
        principal = await self._resolve(secret)
        if principal is None:
            raise _unknown_key()
        return principal

    def require(self, *roles: str) -> Callable[[Request], Awaitable[Principal]]:
        """`Depends(auth.require("analyst"))`: the caller's Principal, if its role is one of `roles` or admin."""
        allowed = set(roles) | {"admin"}

        async def dependency(request: Request) -> Principal:
            client = client_address(request)
            try:
                secret = bearer_secret(request)
            except Problem:
                if self.limits is not None:  # no key at all is a failed authentication too
                    await self.limits.check_locked(client, None)
                    await self.limits.failed(client, None)
                raise
            principal = await self.authenticate(secret, client=client)
            if principal.role not in allowed:
                raise Problem(
                    403,
                    f"A key of role '{principal.role}' may not do this; it needs one of: {', '.join(sorted(allowed))}.",
                )
            request.state.principal = principal
            return principal

        return dependency


class _ShortCache:
    """Answers kept at most MAX_CACHE_SECONDS, keyed by a digest; bounded in size."""

    def __init__(self, ttl: float, clock: Callable[[], float]) -> None:
        self.ttl = min(ttl, MAX_CACHE_SECONDS)
        self.clock = clock
        self._entries: dict[str, tuple[float, object]] = {}

    def get(self, key: str) -> tuple[bool, object]:
        entry = self._entries.get(key)
        if entry is not None and entry[0] > self.clock():
            return True, entry[1]
        return False, None

    def put(self, key: str, value: object) -> None:
        if self.ttl <= 0:
            return
        now = self.clock()
        if len(self._entries) >= _CACHE_ENTRIES:
            self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
            if len(self._entries) >= _CACHE_ENTRIES:
                self._entries.clear()
        self._entries[key] = (now + self.ttl, value)

    def clear(self) -> None:
        self._entries.clear()


class RegistryKeyResolver:
    """Resolves keys by asking the registry (`GET /v1/whoami`), caching each answer, positive or negative, at most
    `ttl` seconds (never more than MAX_CACHE_SECONDS): a key revoked in the registry is refused here within 1 s."""

    def __init__(
        self,
        registry_url: str,
        client: httpx.AsyncClient | None = None,
        *,
        ttl: float = MAX_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = registry_url.rstrip("/") + "/v1/whoami"
        self._client = client or httpx.AsyncClient(timeout=5.0)
        self._cache = _ShortCache(ttl, clock)

    async def __call__(self, secret: str) -> Principal | None:
        if not could_be_a_key(secret):
            return None  # httpx cannot even send it, and the registry never issued it
        digest = hash_key(secret)
        hit, cached = self._cache.get(digest)
        if hit:
            return cached  # type: ignore[return-value]
        try:
            response = await self._client.get(self._url, headers={"Authorization": f"Bearer {secret}"})
        except httpx.TransportError as exc:
            raise Problem(
                503, "The registry, which vouches for API keys, cannot be reached; try again shortly."
            ) from exc
        principal = None
        if response.status_code == 200:
            body = response.json()
            principal = Principal(
                key_id=body["key_id"],
                role=body["role"],
                point_id=body.get("point_id"),
                jurisdiction=body.get("jurisdiction"),
                point_number=body.get("point_number"),
            )
        elif response.status_code != 401:
            raise Problem(503, f"The registry answered {response.status_code} when checking the API key.")
        self._cache.put(digest, principal)
        return principal

    def forget(self) -> None:
        self._cache.clear()

    async def aclose(self) -> None:
        await self._client.aclose()


class RegistryKeyStatus:
    """`key_active(key_id)` for a service other than the registry (the webhook worker asks it before each
    delivery): `GET {registry}/v1/api-keys/{key_id}` with the admin key; 200 with `"revoked_at": null` is active,
    a revocation time or 404 is not. Cached at most MAX_CACHE_SECONDS. The bootstrap admin is always active.
    A registry that cannot be asked raises (the worker then waits and asks again; it never delivers on a guess)."""

    def __init__(
        self,
        registry_url: str,
        admin_key: str,
        client: httpx.AsyncClient | None = None,
        *,
        ttl: float = MAX_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = registry_url.rstrip("/") + "/v1/api-keys/"
        self._headers = {"Authorization": f"Bearer {admin_key}"}
        self._client = client or httpx.AsyncClient(timeout=5.0)
        self._cache = _ShortCache(ttl, clock)

    async def __call__(self, key_id: str) -> bool:
        if key_id == ADMIN_KEY_ID:
            return True
        hit, cached = self._cache.get(key_id)
        if hit:
            return bool(cached)
        response = await self._client.get(self._url + quote(key_id, safe=""), headers=self._headers)
        if response.status_code == 404:
            active = False
        elif response.status_code == 200:
            active = response.json().get("revoked_at") is None
        else:
            raise RuntimeError(f"the registry answered {response.status_code} about API key {key_id}")
        self._cache.put(key_id, active)
        return active

    async def aclose(self) -> None:
        await self._client.aclose()
