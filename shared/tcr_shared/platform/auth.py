"""API keys: `Authorization: Bearer <key>`, roles, and how the followers learn who a key belongs to.

The registry issues keys and stores only their SHA-256; the subsidy and reporting services ask the registry
(`GET /v1/whoami`) and cache the answer briefly. The bootstrap admin key (TCR_ADMIN_KEY) is known everywhere.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
from fastapi import Request

from tcr_shared.platform.problems import Problem

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


class Authenticator:
    """The one check of an API key, for every service: `authenticate(secret)` says who it is (or raises a 401
    problem); `require(*roles)` is the FastAPI dependency that also checks the role (admin always passes)."""

    def __init__(self, admin_key: str | None, resolve: KeyResolver) -> None:
        self._admin_key = admin_key.encode() if admin_key else None
        self._resolve = resolve

    async def authenticate(self, secret: str) -> Principal:
        # Compared as bytes: compare_digest refuses non-ASCII text, and a key is whatever the client sent.
        if self._admin_key and hmac.compare_digest(secret.encode(), self._admin_key):
            return Principal(key_id=ADMIN_KEY_ID, role="admin")
        principal = await self._resolve(secret)
        if principal is None:
            raise Problem(
                401,
                "This API key is not known or has been revoked.",
                headers={"WWW-Authenticate": 'Bearer realm="tcr", error="invalid_token"'},
            )
        return principal

    def require(self, *roles: str) -> Callable[[Request], Awaitable[Principal]]:
        """`Depends(auth.require("analyst"))`: the caller's Principal, if its role is one of `roles` or admin."""
        allowed = set(roles) | {"admin"}

        async def dependency(request: Request) -> Principal:
            principal = await self.authenticate(bearer_secret(request))
            if principal.role not in allowed:
                raise Problem(
                    403,
                    f"A key of role '{principal.role}' may not do this; it needs one of: {', '.join(sorted(allowed))}.",
                )
            request.state.principal = principal
            return principal

        return dependency


class RegistryKeyResolver:
    """Resolves keys by asking the registry, caching answers (positive 60 s, negative 5 s)."""

    def __init__(self, registry_url: str, client: httpx.AsyncClient | None = None) -> None:
        self._url = registry_url.rstrip("/") + "/v1/whoami"
        self._client = client or httpx.AsyncClient(timeout=5.0)
        self._cache: dict[str, tuple[float, Principal | None]] = {}

    async def __call__(self, secret: str) -> Principal | None:
        digest = hash_key(secret)
        cached = self._cache.get(digest)
        if cached and cached[0] > time.monotonic():
            return cached[1]
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
        ttl = 60.0 if principal else 5.0
        self._cache[digest] = (time.monotonic() + ttl, principal)
        return principal

    async def aclose(self) -> None:
        await self._client.aclose()
