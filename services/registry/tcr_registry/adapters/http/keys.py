"""API keys issued by the registry, resolved from their SHA-256 with a short-lived cache."""

from __future__ import annotations

import time

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tcr_registry.adapters.persistence.models import api_keys, points
from tcr_shared.platform.auth import Principal, hash_key

CACHE_SECONDS = 30.0


class KeyStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._cache: dict[str, tuple[float, Principal | None]] = {}

    async def __call__(self, secret: str) -> Principal | None:
        digest = hash_key(secret)
        cached = self._cache.get(digest)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        principal = await self._lookup(digest)
        self._cache[digest] = (time.monotonic() + CACHE_SECONDS, principal)
        return principal

    def forget(self) -> None:
        self._cache.clear()

    async def _lookup(self, digest: str) -> Principal | None:
        query = (
            select(api_keys.c.id, api_keys.c.role, api_keys.c.point_id, points.c.jurisdiction, points.c.number)
            .select_from(api_keys.outerjoin(points, points.c.id == api_keys.c.point_id))
            .where(api_keys.c.key_hash == digest, api_keys.c.revoked_at.is_(None))
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        return Principal(
            key_id=row.id, role=row.role, point_id=row.point_id, jurisdiction=row.jurisdiction, point_number=row.number
        )
