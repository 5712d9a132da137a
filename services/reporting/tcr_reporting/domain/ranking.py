"""Ranking (tcr rule from the spec): counties (or prefectures) by outflow amount, then inflow amount, both
descending. Regions equal on both share a rank (standard competition ranking: 1, 2, 2, 4); the listing order
among equals is by code. The change in rank is previous rank minus current rank: positive means moved up."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RankEntry:
    region: str
    outflow_fen: int
    inflow_fen: int


@dataclass(frozen=True)
class Ranked:
    region: str
    rank: int
    outflow_fen: int
    inflow_fen: int
    previous_rank: int | None
    change: int | None


def rank(entries: list[RankEntry]) -> dict[str, int]:
    ordered = sorted(entries, key=lambda e: (-e.outflow_fen, -e.inflow_fen, e.region))
    ranks: dict[str, int] = {}
    previous_key = None
    current = 0
    for index, entry in enumerate(ordered, start=1):
        key = (entry.outflow_fen, entry.inflow_fen)
        if key != previous_key:
            current = index
            previous_key = key
        ranks[entry.region] = current
    return ranks


def ranking(current: list[RankEntry], previous: list[RankEntry]) -> list[Ranked]:
    now = rank(current)
    # A year with no figures at all has no ranking to compare against.
    before = rank(previous) if any(e.outflow_fen or e.inflow_fen for e in previous) else {}
    by_region = {e.region: e for e in current}
    result = []
    for region in sorted(now, key=lambda r: (now[r], r)):
        entry = by_region[region]
        prev = before.get(region)
        result.append(
            Ranked(
                region,
                now[region],
                entry.outflow_fen,
                entry.inflow_fen,
                prev,
                None if prev is None else prev - now[region],
            )
        )
    return result
