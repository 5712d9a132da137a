"""Kept simulations (the application's `SimulationStore`): one row each, the candidate and the result as JSON. A
long simulation is a job: its row is written `running` first, its progress as it goes, then `done` with the result
or `failed` with the reason."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from tcr_subsidy.adapters.persistence import tables as t


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False)


class SqlSimulationStore:
    def __init__(self, db: AsyncEngine) -> None:
        self._db = db

    async def save(self, simulation: dict[str, Any]) -> None:
        result = simulation.get("result")
        row = {
            "id": simulation["id"],
            "created_at": simulation["created_at"],
            "created_by": simulation["created_by"][:200],
            "from_year": simulation["from_year"],
            "to_year": simulation["to_year"],
            "registry_position": None if result is None else result["registry_position"],
            "candidate": json.dumps(simulation["candidate"], ensure_ascii=False),
            "result": _json(result),
            "status": simulation.get("status", "done"),
            "progress": _json(simulation.get("progress")),
            "error": simulation.get("error"),
        }
        async with self._db.begin() as conn:
            await conn.execute(insert(t.simulations).values(row))

    async def progress(self, simulation_id: str, progress: dict[str, Any]) -> None:
        await self._update(simulation_id, progress=_json(progress))

    async def finish(self, simulation_id: str, result: dict[str, Any]) -> None:
        await self._update(
            simulation_id, status="done", result=_json(result), registry_position=result["registry_position"]
        )

    async def fail(self, simulation_id: str, error: str) -> None:
        await self._update(simulation_id, status="failed", error=error[:2000])

    async def fail_unfinished(self, error: str) -> int:
        """Jobs left `running` by a process that stopped (a crash, a kill): nothing of them was kept, so they read
        `failed`. Called when the service starts, before it runs any job of its own."""
        async with self._db.begin() as conn:
            done = await conn.execute(
                update(t.simulations).where(t.simulations.c.status == "running").values(status="failed", error=error)
            )
        return done.rowcount or 0

    async def _update(self, simulation_id: str, **values: Any) -> None:
        async with self._db.begin() as conn:
            await conn.execute(update(t.simulations).where(t.simulations.c.id == simulation_id).values(**values))

    async def get(self, simulation_id: str) -> dict[str, Any] | None:
        async with self._db.connect() as conn:
            row = (await conn.execute(select(t.simulations).where(t.simulations.c.id == simulation_id))).first()
        if row is None:
            return None
        simulation = {
            "id": row.id,
            "status": row.status,
            "created_at": row.created_at,
            "created_by": row.created_by,
            "from_year": row.from_year,
            "to_year": row.to_year,
            "candidate": json.loads(row.candidate),
        }
        if row.status == "done":
            simulation["result"] = json.loads(row.result)
        else:
            simulation["progress"] = None if row.progress is None else json.loads(row.progress)
        if row.status == "failed":
            simulation["error"] = row.error
        return simulation
