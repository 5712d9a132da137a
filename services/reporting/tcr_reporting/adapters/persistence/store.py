"""Reads of the stored figures: a handful of indexed rows per request, never the events."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import distinct, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tcr_reporting.adapters.persistence.tables import feed_tracking, figures

Row = tuple[str, int, str, str, int, int, int]  # region, year, side, category, count, amount, technology


class FigureStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def rows(self, regions: Iterable[str], years: Iterable[int]) -> list[Row]:
        f = figures.c
        query = select(f.region, f.year, f.side, f.category, f.count, f.amount_fen, f.technology_amount_fen).where(
            f.region.in_(sorted(set(regions))), f.year.in_(sorted(set(years)))
        )
        async with self._engine.connect() as connection:
            result = await connection.execute(query)
            return [tuple(r) for r in result]

    async def years(self) -> list[int]:
        async with self._engine.connect() as connection:
            result = await connection.execute(select(distinct(figures.c.year)).order_by(figures.c.year))
            return [int(y) for (y,) in result]

    async def positions(self) -> dict[str, int]:
        async with self._engine.connect() as connection:
            result = await connection.execute(select(feed_tracking.c.feed, feed_tracking.c.position))
            return {feed: int(position) for feed, position in result}
