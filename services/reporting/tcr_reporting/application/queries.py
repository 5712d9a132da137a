"""Queries over the stored figures: metrics of one region, rankings, the annual report, dashboard series.

Answers are cached per projection version (the positions the followers have applied), so repeated requests
between two events cost a dictionary lookup; any applied page changes the version and empties the cache.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from tcr_reporting.domain.calendar import due_date, is_provisional
from tcr_reporting.domain.figures import INFLOW, OUTFLOW, SUBSIDY
from tcr_reporting.domain.ranking import RankEntry, ranking
from tcr_shared.language.money import fen_text
from tcr_shared.language.regions import NINGXIA, Region, counties, ningxia_regions, prefectures
from tcr_shared.language.vocabulary import CATEGORIES, PROGRAMMES


class Store(Protocol):
    async def rows(self, regions, years) -> list[tuple]: ...
    async def years(self) -> list[int]: ...


@dataclass
class SideFigures:
    count: int = 0
    amount: int = 0
    technology_amount: int = 0
    by_category: dict[str, list[int]] = field(default_factory=lambda: {c: [0, 0, 0] for c in CATEGORIES})

    def add(self, category: str, count: int, amount: int, technology: int) -> None:
        self.count += count
        self.amount += amount
        self.technology_amount += technology
        entry = self.by_category.setdefault(category, [0, 0, 0])
        entry[0] += count
        entry[1] += amount
        entry[2] += technology

    def as_json(self, with_categories: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {
            "count": self.count,
            "amount": fen_text(self.amount),
            "technology_amount": fen_text(self.technology_amount),
        }
        if with_categories:
            body["by_category"] = {
                c: {"count": v[0], "amount": fen_text(v[1]), "technology_amount": fen_text(v[2])}
                for c, v in self.by_category.items()
            }
        return body


@dataclass
class RegionYear:
    outflow: SideFigures = field(default_factory=SideFigures)
    inflow: SideFigures = field(default_factory=SideFigures)
    subsidies: dict[str, int] = field(default_factory=lambda: {p: 0 for p in PROGRAMMES})

    @property
    def subsidy_total(self) -> int:
        return sum(self.subsidies.values())

    def subsidies_json(self) -> dict[str, Any]:
        return {
            "total": fen_text(self.subsidy_total),
            "by_programme": {p: fen_text(v) for p, v in self.subsidies.items()},
        }

    def flat(self) -> dict[str, int]:
        """The figures of the annual report, in fen (amounts) and units (counts)."""
        return {
            "outflow_count": self.outflow.count,
            "outflow_amount": self.outflow.amount,
            "outflow_technology_amount": self.outflow.technology_amount,
            "inflow_count": self.inflow.count,
            "inflow_amount": self.inflow.amount,
            "inflow_technology_amount": self.inflow.technology_amount,
            "subsidies_total": self.subsidy_total,
            **{f"subsidies_{p}": v for p, v in self.subsidies.items()},
        }


REPORT_FIELDS = (
    "outflow_count",
    "outflow_amount",
    "outflow_technology_amount",
    "inflow_count",
    "inflow_amount",
    "inflow_technology_amount",
    "subsidies_total",
    *(f"subsidies_{p}" for p in PROGRAMMES),
)
COUNT_FIELDS = frozenset({"outflow_count", "inflow_count"})


def field_text(name: str, value: int) -> int | str:
    return value if name in COUNT_FIELDS else fen_text(value)


def collect(rows: list[tuple]) -> dict[tuple[str, int], RegionYear]:
    table: dict[tuple[str, int], RegionYear] = {}
    for region, year, side, category, count, amount, technology in rows:
        figures = table.setdefault((region, year), RegionYear())
        if side == OUTFLOW:
            figures.outflow.add(category, count, amount, technology)
        elif side == INFLOW:
            figures.inflow.add(category, count, amount, technology)
        elif side == SUBSIDY:
            figures.subsidies[category] = figures.subsidies.get(category, 0) + amount
    return table


def region_json(region: Region) -> dict[str, Any]:
    return {"region": region.code, "name": region.name, "level": region.level}


class ReportingQueries:
    def __init__(
        self,
        store: Store,
        version: Callable[[], Awaitable[tuple]],
        clock: Callable[[], datetime],
        *,
        cache: bool = True,
    ) -> None:
        self._use_cache = cache
        self._store = store
        self._version = version
        self._clock = clock
        self._cache: dict[tuple, Any] = {}
        self._cache_version: tuple | None = None
        self._inflight: dict[tuple, asyncio.Future] = {}

    async def _cached(self, key: tuple, compute: Callable[[], Awaitable[Any]]) -> Any:
        if not self._use_cache:
            return await compute()
        version = await self._version()  # read before the figures: a stale entry can only be older
        if version != self._cache_version:
            self._cache = {}
            self._cache_version = version
        if key in self._cache:
            return self._cache[key]
        # single flight: concurrent requests for the same answer share one computation
        flight_key = (version, key)
        task = self._inflight.get(flight_key)
        if task is None:
            task = asyncio.ensure_future(compute())
            self._inflight[flight_key] = task
            task.add_done_callback(lambda _t: self._inflight.pop(flight_key, None))
        value = await asyncio.shield(task)
        if self._cache_version == version:
            self._cache[key] = value
        return value

    async def version(self) -> tuple:
        return await self._version()

    async def _table(self, regions, years) -> dict[tuple[str, int], RegionYear]:
        return collect(await self._store.rows(regions, years))

    # --- metrics -----------------------------------------------------------------------------------------
    async def metrics(self, code: str, year: int) -> dict[str, Any]:
        async def compute() -> dict[str, Any]:
            region = ningxia_regions()[code]
            figures = (await self._table([code], [year])).get((code, year), RegionYear())
            return {
                "region": code,
                "name": region.name,
                "level": region.level,
                "year": year,
                "outflow": figures.outflow.as_json(),
                "inflow": figures.inflow.as_json(),
                "subsidies": figures.subsidies_json(),
            }

        return await self._cached(("metrics", code, year), compute)

    async def metrics_json(self, code: str, year: int) -> bytes:
        """The metrics, serialised once per projection version (the hot path of the API)."""

        async def compute() -> bytes:
            return json.dumps(await self.metrics(code, year), ensure_ascii=False, separators=(",", ":")).encode()

        return await self._cached(("metrics-json", code, year), compute)

    async def trend(self, code: str) -> list[dict[str, Any]]:
        """The region's figures for every year that has any."""

        async def compute() -> list[dict[str, Any]]:
            years = await self._store.years()
            table = await self._table([code], years) if years else {}
            return [
                {
                    "year": y,
                    **{k: field_text(k, v) for k, v in table.get((code, y), RegionYear()).flat().items()},
                    "by_category": {
                        side: {
                            c: fen_text(v[1])
                            for c, v in getattr(table.get((code, y), RegionYear()), side).by_category.items()
                        }
                        for side in (OUTFLOW, INFLOW)
                    },
                }
                for y in years
            ]

        return await self._cached(("trend", code), compute)

    async def years(self) -> list[int]:
        return await self._cached(("years",), self._store.years)

    # --- rankings ----------------------------------------------------------------------------------------
    async def rankings(self, year: int, level: str) -> dict[str, Any]:
        async def compute() -> dict[str, Any]:
            regions = counties() if level == "county" else prefectures()
            codes = [r.code for r in regions]
            table = await self._table(codes, [year, year - 1])

            def entries(y: int) -> list[RankEntry]:
                return [
                    RankEntry(
                        c, table.get((c, y), RegionYear()).outflow.amount, table.get((c, y), RegionYear()).inflow.amount
                    )
                    for c in codes
                ]

            known = ningxia_regions()
            items = []
            for r in ranking(entries(year), entries(year - 1)):
                figures = table.get((r.region, year), RegionYear())
                region = known[r.region]
                items.append(
                    {
                        "rank": r.rank,
                        "region": r.region,
                        "name": region.name,
                        "prefecture": region.parent if level == "county" else None,
                        "outflow": figures.outflow.as_json(with_categories=False),
                        "inflow": figures.inflow.as_json(with_categories=False),
                        "previous_rank": r.previous_rank,
                        "rank_change": r.change,
                    }
                )
            return {
                "year": year,
                "previous_year": year - 1,
                "level": level,
                "order": "outflow amount descending, then inflow amount descending; equal figures share a rank",
                "rank_change": "previous rank minus this rank: positive moved up",
                "items": items,
            }

        return await self._cached(("rankings", year, level), compute)

    # --- annual report -----------------------------------------------------------------------------------
    async def annual_report(self, year: int, positions: dict[str, int] | None = None) -> dict[str, Any]:
        async def compute() -> dict[str, Any]:
            known = ningxia_regions()
            codes = list(known)
            table = await self._table(codes, [year, year - 1])
            county_ranks = {item["region"]: item for item in (await self.rankings(year, "county"))["items"]}

            def line(code: str) -> dict[str, Any]:
                now = table.get((code, year), RegionYear()).flat()
                before = table.get((code, year - 1), RegionYear()).flat()
                body = region_json(known[code])
                body["figures"] = {k: field_text(k, now[k]) for k in REPORT_FIELDS}
                body["previous"] = {k: field_text(k, before[k]) for k in REPORT_FIELDS}
                body["change"] = {k: field_text(k, now[k] - before[k]) for k in REPORT_FIELDS}
                if code in county_ranks:
                    body["rank"] = county_ranks[code]["rank"]
                    body["rank_change"] = county_ranks[code]["rank_change"]
                return body

            def above(code: str, members: list[str]) -> dict[str, Any]:
                """What an area counts beyond the sum of its members: parties located at the area's own code
                (old events with a prefecture or region code as a party's region), so that the lines add up."""
                total = table.get((code, year), RegionYear()).flat()
                parts = [table.get((m, year), RegionYear()).flat() for m in members]
                return {k: field_text(k, total[k] - sum(p[k] for p in parts)) for k in REPORT_FIELDS}

            prefecture_lines = []
            for prefecture in prefectures():
                entry = line(prefecture.code)
                members = [c.code for c in counties() if c.parent == prefecture.code]
                entry["counties"] = [line(code) for code in members]
                entry["above_counties"] = above(prefecture.code, members)
                prefecture_lines.append(entry)
            region_line = line(NINGXIA)
            region_line["above_prefectures"] = above(NINGXIA, [p.code for p in prefectures()])
            now = self._clock()
            return {
                "year": year,
                "previous_year": year - 1,
                "title": {
                    "zh": f"{year}年度技术合同登记统计报告（县级考核）",
                    "en": f"Technology contract registration report {year} (county assessment)",
                },
                "provisional": is_provisional(year, now),
                "due_date": due_date(year).isoformat(),
                "generated_at": now.isoformat(timespec="seconds"),
                "fields": list(REPORT_FIELDS),
                "region": region_line,
                "prefectures": prefecture_lines,
            }

        report = dict(await self._cached(("report", year), compute))
        if positions is not None:
            report["as_of"] = positions
        return report


def report_lines(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The report as flat lines, counties within their prefecture, then the prefecture, then the region."""
    lines = []
    for prefecture in report["prefectures"]:
        for county in prefecture["counties"]:
            lines.append({**county, "prefecture": prefecture["region"]})
        lines.append({**prefecture, "prefecture": prefecture["region"]})
    lines.append({**report["region"], "prefecture": None})
    return lines
