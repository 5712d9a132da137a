"""Whether an API key is still active, read from the api_keys table on every question (no cache): the registry's
webhook worker asks before each delivery, and the other services ask through `GET /v1/api-keys/{key_id}`
(their `RegistryKeyStatus`), so a revocation takes effect everywhere at once."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tcr_registry.adapters.persistence.models import api_keys
from tcr_shared.platform.auth import ADMIN_KEY_ID


class KeyStatus:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def describe(self, key_id: str) -> dict | None:
        """{"id", "role", "revoked_at": None or ISO time} of an issued key; None if no such key was issued."""
        query = select(api_keys.c.id, api_keys.c.role, api_keys.c.revoked_at).where(api_keys.c.id == key_id)
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        return {"id": row.id, "role": row.role, "revoked_at": _iso(row.revoked_at)}

    async def is_active(self, key_id: str) -> bool:
        """True unless the key is revoked or unknown; the bootstrap admin (TCR_ADMIN_KEY) is always active."""
        if key_id == ADMIN_KEY_ID:
            return True
        described = await self.describe(key_id)
        return described is not None and described["revoked_at"] is None


def _iso(when: datetime | None) -> str | None:
    if when is None:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).isoformat()  # SQLite keeps no zone: it is UTC
