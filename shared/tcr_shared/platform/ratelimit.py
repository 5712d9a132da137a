"""Rate limits on authentication (issue 11, point 5), with the `limits` library.

Three rules, applied by `Authenticator` (tcr_shared.platform.auth) when it is given a `RateLimits`:
- failed authentications are counted per client address and per presented key (its SHA-256, never the key);
  the failure that crosses `TCR_RATE_LIMIT_FAILURES_PER_ADDRESS` / `..._FAILURES_PER_KEY` locks that address or
  key out for `TCR_RATE_LIMIT_LOCKOUT_SECONDS`: during the lockout every attempt from it is answered 429 without
  looking at the key, so guessing learns nothing;
- an authenticated key may make `TCR_RATE_LIMIT_PER_KEY` requests (e.g. "600/minute"; empty = no quota);
- every refusal is a 429 problem+json with `Retry-After` (whole seconds).

Counts live in `TCR_RATE_LIMIT_STORAGE`: `memory://` (default, one process) or `redis://host:port[/db]`, which
several replicas share so that a limit holds across all of them. A storage that cannot be reached fails open
(the request goes on, a warning is logged): rate limiting must not become the outage it protects against.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
import re
import time
from dataclasses import dataclass

import limits
from limits.aio.strategies import MovingWindowRateLimiter, RateLimiter, SlidingWindowCounterRateLimiter
from limits.storage import storage_from_string
from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tcr_shared.platform.problems import Problem

log = logging.getLogger("tcr.ratelimit")


class RateLimitSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TCR_RATE_LIMIT_", extra="ignore")

    storage: str = "memory://"  # or redis://127.0.0.1:6379/0, shared by replicas
    per_key: str = ""  # request quota per authenticated key, e.g. "600/minute"; empty: none
    failures_per_address: str = "20/minute"  # failed authentications from one client address
    failures_per_key: str = "10/minute"  # failed authentications presenting one (wrong or revoked) key
    lockout_seconds: int = 60  # how long an address or key is refused after crossing a failure limit
    namespace: str = "tcr"  # key prefix in a shared storage
    # Addresses whose failures are not counted per address (only per key): the other tcr services, which ask the
    # registry's /v1/whoami with their clients' keys and must not be locked out for their clients' mistakes.
    trusted_networks: str = ""  # e.g. "10.0.5.0/24, fd00:5::/64"

    @field_validator("trusted_networks")
    @classmethod
    def _networks_parse(cls, value: str) -> str:
        _networks(value)
        return value


def _networks(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    try:
        return tuple(ipaddress.ip_network(item, strict=False) for item in re.split(r"[\s,]+", text) if item)
    except ValueError as exc:
        raise ValueError(f"TCR_RATE_LIMIT_TRUSTED_NETWORKS: {exc}") from exc


@dataclass(frozen=True)
class _Rule:
    item: limits.RateLimitItem
    limiter: RateLimiter


def storage_uri(setting: str) -> str:
    """The `limits` storage URI for a setting: `memory://` or `redis://...` (async drivers)."""
    if setting.startswith(("redis://", "rediss://", "redis+unix://")):
        return "async+" + setting
    if setting in ("", "memory://"):
        return "async+memory://"
    raise ValueError(f"TCR_RATE_LIMIT_STORAGE must be memory:// or a redis:// URL, not {setting!r}")


class RateLimits:
    def __init__(self, settings: RateLimitSettings | None = None) -> None:
        self.settings = settings or RateLimitSettings()
        uri = storage_uri(self.settings.storage)
        options = {"implementation": "redispy"} if "redis" in uri else {}
        self.storage = storage_from_string(uri, **options)
        moving = MovingWindowRateLimiter(self.storage)  # exact, for the small failure counts and the lockout
        sliding = SlidingWindowCounterRateLimiter(self.storage)  # cheap, for the large per-key quota
        self._failures_address = _Rule(limits.parse(self.settings.failures_per_address), moving)
        self._failures_key = _Rule(limits.parse(self.settings.failures_per_key), moving)
        self._lockout = _Rule(limits.RateLimitItemPerSecond(1, self.settings.lockout_seconds), moving)
        self._quota = _Rule(limits.parse(self.settings.per_key), sliding) if self.settings.per_key else None
        self._trusted = _networks(self.settings.trusted_networks)

    def _ids(self, kind: str, value: str) -> tuple[str, ...]:
        return (self.settings.namespace, kind, value)

    @staticmethod
    def _key_digest(secret: str) -> str:
        return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()[:32]

    def _subjects(self, address: str | None, secret: str | None) -> list[tuple[str, str]]:
        subjects = []
        if address and not self._is_trusted(address):
            subjects.append(("address", address))
        if secret:
            subjects.append(("key", self._key_digest(secret)))
        return subjects

    def _is_trusted(self, address: str) -> bool:
        if not self._trusted:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self._trusted if net.version == ip.version)

    async def check_locked(self, address: str | None, secret: str | None) -> None:
        """Before a key is looked at: 429 if its address or the key itself is locked out."""
        for kind, value in self._subjects(address, secret):
            ids = self._ids(f"lock-{kind}", value)
            if not await self._safe(self._lockout.limiter.test(self._lockout.item, *ids), True):
                raise await self._too_many(self._lockout, ids, f"Too many failed authentications from this {kind}")

    async def failed(self, address: str | None, secret: str | None) -> None:
        """A failed authentication: count it; the one that crosses a limit locks out and answers 429."""
        crossed = None
        for kind, value in self._subjects(address, secret):
            rule = self._failures_address if kind == "address" else self._failures_key
            if not await self._safe(rule.limiter.hit(rule.item, *self._ids(f"fail-{kind}", value)), True):
                lock_ids = self._ids(f"lock-{kind}", value)
                await self._safe(self._lockout.limiter.hit(self._lockout.item, *lock_ids), True)
                log.warning("authentication lockout of a %s after repeated failures", kind)
                crossed = crossed or (kind, lock_ids)
        if crossed:
            kind, lock_ids = crossed
            raise await self._too_many(self._lockout, lock_ids, f"Too many failed authentications from this {kind}")

    async def spend(self, key_id: str) -> None:
        """An authenticated request of `key_id`: 429 beyond its quota."""
        if self._quota is None:
            return
        ids = self._ids("quota", key_id)
        if not await self._safe(self._quota.limiter.hit(self._quota.item, *ids), True):
            raise await self._too_many(self._quota, ids, f"This API key may make {self._quota.item} requests")

    async def _too_many(self, rule: _Rule, ids: tuple[str, ...], what: str) -> Problem:
        stats = await self._safe(rule.limiter.get_window_stats(rule.item, *ids), None)
        wait = max(1, math.ceil(stats.reset_time - time.time())) if stats else rule.item.get_expiry()
        return Problem(429, f"{what}; try again in {wait} s.", headers={"Retry-After": str(wait)})

    async def _safe(self, operation, fallback):
        try:
            return await operation
        except Exception as exc:  # the storage is down: fail open, say so
            log.warning("rate limit storage unavailable (%s): not limiting", type(exc).__name__)
            return fallback

    async def check_storage(self) -> bool:
        """True when the storage answers (for readiness checks and the tests)."""
        return bool(await self.storage.check())

    async def reset(self) -> None:
        await self.storage.reset()
