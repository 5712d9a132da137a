"""Kept simulations (the application's `SimulationStore`): one row each, the candidate and the result as JSON."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tcr_subsidy.adapters.persistence import tables as t


class SqlSimulationStore:
    def __init__(self, db: AsyncEngine) -> None:
        self._db = db

    async def save(self, simulation: dict[str, Any]) -> None:
        row = {
            "id": simulation["id"],
            "created_at": simulation["created_at"],
            "created_by": simulation["created_by"][:200],
            "from_year": simulation["from_year"],
            "to_year": simulation["to_year"],
            "registry_position": simulation["result"]["registry_position"],
            "candidate": json.dumps(simulation["candidate"], ensure_ascii=False),
            "result": json.dumps(simulation["result"], ensure_ascii=False),
        }
        async with self._db.begin() as conn:
            await conn.execute(insert(t.simulations).values(row))

    async def get(self, simulation_id: str) -> dict[str, Any] | None:
        async with self._db.connect() as conn:
            row = (await conn.execute(select(t.simulations).where(t.simulations.c.id == simulation_id))).first()
        if row is None:
            return None
        return {
            "id": row.id,
            "created_at": row.created_at,
            "created_by": row.created_by,
            "from_year": row.from_year,
            "to_year": row.to_year,
            "candidate": json.loads(row.candidate),
            "result": json.loads(row.result),
        }
