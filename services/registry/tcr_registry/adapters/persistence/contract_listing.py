"""The ContractIndex port over the contract_index table (filled by tcr_registry.adapters.feeds.contract_index)."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tcr_registry.adapters.persistence.models import contract_index
from tcr_registry.application.ports import ContractFilter, ListedContract


class SqlContractIndex:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def page(self, filters: ContractFilter, after: int | None, limit: int) -> list[ListedContract]:
        t = contract_index
        query = select(t.c.first_position, t.c.summary).order_by(t.c.first_position).limit(limit)
        if filters.point_id is not None:
            query = query.where(t.c.point_id == filters.point_id)
        if filters.status:
            query = query.where(t.c.status == filters.status)
        if filters.seller:
            query = query.where(t.c.seller_code == filters.seller)
        if filters.buyer:
            query = query.where(t.c.buyer_code == filters.buyer)
        if filters.area_prefix:
            prefix = filters.area_prefix + "%"
            query = query.where(or_(t.c.seller_region.like(prefix), t.c.buyer_region.like(prefix)))
        if filters.year:
            query = query.where(t.c.year == filters.year)
        if after is not None:
            query = query.where(t.c.first_position > after)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [ListedContract(r.first_position, r.summary) for r in rows]
