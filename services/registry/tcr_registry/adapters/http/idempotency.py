"""Idempotency-Key: a retry with the same key and body replays the first answer; with another body, 422."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from tcr_registry.adapters.persistence.models import idempotency_records
from tcr_shared.platform.auth import Principal
from tcr_shared.platform.problems import Problem

REPLAYED_HEADERS = ("location", "etag", "tcr-position")


class IdempotencyRecords:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._locks: dict[tuple[str, str], list] = {}  # [lock, users]

    async def run(
        self, request: Request, principal: Principal, handle: Callable[[], Awaitable[JSONResponse]]
    ) -> Response:
        key = request.headers.get("idempotency-key")
        if key is None:
            return await handle()
        if not 1 <= len(key) <= 200:
            raise Problem(
                422,
                "Idempotency-Key must be 1 to 200 characters.",
                errors=[{"field": "Idempotency-Key", "message": "1 to 200 characters"}],
            )
        fingerprint = hashlib.sha256(
            request.method.encode() + request.url.path.encode() + b"\n" + await request.body()
        ).hexdigest()
        slot = (principal.key_id, key)
        entry = self._locks.setdefault(slot, [asyncio.Lock(), 0])
        entry[1] += 1
        try:
            async with entry[0]:
                earlier = await self._find(principal.key_id, key)
                if earlier is not None:
                    return self._replay(earlier, fingerprint)
                response = await handle()
                if 200 <= response.status_code < 300:
                    await self._save(principal.key_id, key, fingerprint, response)
                return response
        finally:
            # Drop the lock only when no other request with this key holds or awaits it (a failed request
            # used to leave its lock behind, and a finished one could drop a lock another request was using).
            entry[1] -= 1
            if entry[1] == 0:
                self._locks.pop(slot, None)

    async def _find(self, key_id: str, key: str):
        t = idempotency_records
        async with self._engine.connect() as conn:
            return (await conn.execute(select(t).where(t.c.key_id == key_id, t.c.idempotency_key == key))).first()

    @staticmethod
    def _replay(earlier, fingerprint: str) -> Response:
        if earlier.request_hash != fingerprint:
            raise Problem(
                422,
                "This Idempotency-Key was already used with a different request body; use a new key for a new request.",
                errors=[{"field": "Idempotency-Key", "message": "reused with a different body"}],
            )
        headers = dict(earlier.headers, **{"Idempotent-Replayed": "true"})
        return JSONResponse(earlier.body, status_code=earlier.status_code, headers=headers)

    async def _save(self, key_id: str, key: str, fingerprint: str, response: JSONResponse) -> None:
        headers = {k: v for k, v in response.headers.items() if k.lower() in REPLAYED_HEADERS}
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    insert(idempotency_records).values(
                        key_id=key_id,
                        idempotency_key=key,
                        request_hash=fingerprint,
                        status_code=response.status_code,
                        body=json.loads(response.body),
                        headers=headers,
                    )
                )
        except IntegrityError:
            pass  # another process stored the same key first; its record stands
