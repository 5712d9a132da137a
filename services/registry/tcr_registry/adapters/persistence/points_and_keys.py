"""The PointsAndKeys port over the points and api_keys tables. Keys are kept as their SHA-256 only, and
resolved through a short-lived cache (revoking a key clears it)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tcr_registry.adapters.persistence.models import api_keys, points
from tcr_registry.application.errors import PointNumberTaken
from tcr_registry.application.ports import IssuedKey, RegistrationPoint
from tcr_shared.platform.auth import Principal, hash_key, new_secret

CACHE_SECONDS = 30.0
# Stores the write's idempotency receipt inside the write's own transaction (adapters/http/idempotency.py).
Receipt = Callable[[AsyncConnection, Any], Awaitable[None]] | None


async def _no_receipt(_conn: AsyncConnection, _result: Any) -> None:
    return None


class KeyStore:
    """Resolves a secret to the principal it belongs to, remembering answers for CACHE_SECONDS."""

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


class SqlPointsAndKeys:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self.keys = KeyStore(engine)

    async def create_point(
        self, number: str, name: str, jurisdiction: str, created_by: str, receipt: Receipt = None
    ) -> RegistrationPoint:
        point = RegistrationPoint(str(uuid.uuid4()), number, name, jurisdiction)
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    insert(points).values(
                        id=point.id, number=number, name=name, jurisdiction=jurisdiction, created_by=created_by
                    )
                )
                await (receipt or _no_receipt)(conn, point)
        except IntegrityError:
            raise PointNumberTaken(number, jurisdiction) from None
        return point

    async def list_points(self) -> list[RegistrationPoint]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(points).order_by(points.c.jurisdiction, points.c.number))).all()
        return [RegistrationPoint(r.id, r.number, r.name, r.jurisdiction) for r in rows]

    async def point_exists(self, point_id: str) -> bool:
        async with self._engine.connect() as conn:
            return bool(await conn.scalar(select(points.c.id).where(points.c.id == point_id)))

    async def issue_key(
        self, role: str, point_id: str | None, label: str | None, created_by: str, receipt: Receipt = None
    ) -> IssuedKey:
        key = IssuedKey(str(uuid.uuid4()), new_secret())
        async with self._engine.begin() as conn:
            await conn.execute(
                insert(api_keys).values(
                    id=key.id,
                    key_hash=hash_key(key.secret),
                    role=role,
                    point_id=point_id,
                    label=label,
                    created_by=created_by,
                )
            )
            await (receipt or _no_receipt)(conn, key)
        return key

    async def revoke_key(self, key_id: str, receipt: Receipt = None) -> bool:
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
            )
            if result.rowcount > 0:
                await (receipt or _no_receipt)(conn, key_id)
        self.keys.forget()
        return result.rowcount > 0

    async def resolve_key(self, secret: str) -> Principal | None:
        return await self.keys(secret)
