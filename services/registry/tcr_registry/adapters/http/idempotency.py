"""Idempotency-Key: a retry with the same key and body gets the first answer again; with another body, 422.

The receipt of a write is stored in the same transaction as the write itself (the events, through the writer and
the event store's recorder; an admin's row, in its SQL transaction), so a retry after a crash at any point after
the commit is answered as the first attempt would have been: same status, body, ETag and TCR-Position. Receipts
hold no personal data: a contract write keeps which contract version it showed and renders it again; an admin
write keeps its answer sealed with the master key.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tcr_registry.adapters.persistence.models import idempotency_records
from tcr_shared.platform.auth import Principal
from tcr_shared.platform.problems import Problem
from tcr_shared.platform.sealing import master_key

log = logging.getLogger("tcr.registry.idempotency")


@dataclass(frozen=True)
class IdempotentRequest:
    """A request that carries an Idempotency-Key: who sent it, the key, and a fingerprint of what was asked."""

    key_id: str
    key: str
    fingerprint: str

    async def record_answer(self, conn: AsyncConnection, status_code: int, body: Any, headers: dict[str, str]) -> None:
        """Store an admin write's receipt inside the caller's transaction (conn), its answer sealed."""
        await conn.execute(
            insert(idempotency_records).values(
                key_id=self.key_id,
                idempotency_key=self.key,
                request_hash=self.fingerprint,
                status_code=status_code,
                headers=headers,
                sealed_body=master_key().seal(json.dumps(body)),
            )
        )


Handle = Callable[[IdempotentRequest | None], Awaitable[Response]]
Replay = Callable[[Any], Awaitable[Response]]


class IdempotencyRecords:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._locks: dict[tuple[str, str], list] = {}  # [lock, users]

    async def run(self, request: Request, principal: Principal, handle: Handle, replay: Replay) -> Response:
        """Answer `request`: by `handle` (which stores the receipt with its write), or by `replay` of the receipt
        an earlier request with the same key left."""
        key = request.headers.get("idempotency-key")
        if key is None:
            return await handle(None)
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
                earlier = await self.find(principal.key_id, key)
                if earlier is not None:
                    _same_request(earlier, fingerprint)
                    response = await replay(earlier)
                    response.headers["Idempotent-Replayed"] = "true"
                    return response
                return await handle(IdempotentRequest(principal.key_id, key, fingerprint))
        finally:
            # Drop the lock only when no other request with this key holds or awaits it.
            entry[1] -= 1
            if entry[1] == 0:
                self._locks.pop(slot, None)

    async def find(self, key_id: str, key: str):
        t = idempotency_records
        async with self._engine.connect() as conn:
            return (await conn.execute(select(t).where(t.c.key_id == key_id, t.c.idempotency_key == key))).first()


def _same_request(earlier, fingerprint: str) -> None:
    if earlier.request_hash != fingerprint:
        raise Problem(
            422,
            "This Idempotency-Key was already used with a different request body; use a new key for a new request.",
            errors=[{"field": "Idempotency-Key", "message": "reused with a different body"}],
        )


def replay_sealed(earlier) -> Response:
    """An admin write's answer, as it was first given."""
    if earlier.status_code == 204 or earlier.sealed_body is None:
        return Response(status_code=earlier.status_code, headers=dict(earlier.headers or {}))
    body = json.loads(master_key().open(earlier.sealed_body))
    return JSONResponse(body, status_code=earlier.status_code, headers=dict(earlier.headers or {}))


def crash_after_commit(setting: str | None, action: str) -> None:
    """Fault injection for tests only (TCR_FAULT_AFTER_COMMIT=certify,amend,...): die like kill -9 right after
    the write committed and before answering, so a test can retry against a restarted process."""
    if setting and action in {name.strip() for name in setting.split(",")}:
        log.warning("TCR_FAULT_AFTER_COMMIT: exiting after the %s commit", action)
        os._exit(137)
