"""How events change the figures of clause (七): outflow, inflow and subsidies per region, policy year and
category (or programme). Pure Python: the projection feeds events in; persistence stores what comes out.

Money is counted in integer fen here (exact, and cheap to sum in SQL on both backends); it becomes a Decimal
on the wire at the edge (`tcr_shared.language.money.fen_text`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any, NamedTuple

from tcr_shared.language.money import MoneyFormatError, to_fen
from tcr_shared.language.regions import NINGXIA, ningxia_regions
from tcr_shared.language.vocabulary import CATEGORIES, CERTIFIED, PROGRAMMES, RegistryEventType

OUTFLOW = "outflow"
INFLOW = "inflow"
SUBSIDY = "subsidy"
SIDES = (OUTFLOW, INFLOW)
# The contract status in which a contract counts: only certified (amended contracts stay certified).
COUNTING_STATUS = CERTIFIED


class FigureError(ValueError):
    """An event whose figures cannot be read (malformed money, missing year)."""


# Money as every publisher writes it (`format_money`: digits, a point, two decimals): read as an integer
# straight from the digits. Anything else goes through Decimal, which gives the same value or the error.
_WIRE_MONEY = re.compile(r"-?[0-9]+\.[0-9]{2}")


def wire_fen(text: Any) -> int:
    """Money on the wire (a string with two decimals, possibly negative for deltas) to integer fen."""
    if isinstance(text, str) and _WIRE_MONEY.fullmatch(text):
        return int(text[:-3] + text[-2:])  # a projection build reads two amounts per event: no Decimal
    if not isinstance(text, str):
        raise FigureError(f"money must be a string, got {text!r}")
    try:
        value = Decimal(text)
    except InvalidOperation as exc:
        raise FigureError(f"{text!r} is not money") from exc
    if not value.is_finite():
        raise FigureError(f"{text!r} is not money")
    try:
        return to_fen(value)
    except MoneyFormatError as exc:
        raise FigureError(f"{text!r} has more than two decimals") from exc


def areas_of(code: str | None) -> list[str]:
    """The Ningxia areas a located party counts in: its own code and every area above it, up to 640000.
    A party outside Ningxia (or foreign, code None) counts nowhere in Ningxia's figures."""
    return list(_area_chain(code))


@cache
def _area_chain(code: str | None) -> tuple[str, ...]:
    # The region table never changes in a process: each code's chain is walked once, not once per event.
    regions = ningxia_regions()
    areas: list[str] = []
    while code and code in regions:
        areas.append(code)
        code = regions[code].parent
    return tuple(areas)


class CountedContract(NamedTuple):
    """What one contract contributes, as last counted: the record kept per contract so that an amendment
    subtracts exactly what was added before, and a revocation removes it. (A NamedTuple: a projection build
    makes one per certified event, and a tuple is built and compared several times faster than a dataclass.)"""

    year: int
    category: str
    amount_fen: int
    technology_amount_fen: int
    seller_region: str | None
    buyer_region: str | None

    def contributions(self) -> Iterator[tuple[tuple[str, int, str, str], int, int, int]]:
        """(region, year, side, category) -> +1 contract, amount, technology amount. The seller's county and
        every area above it get the outflow; the buyer's, the inflow. Prefecture and region figures are
        thereby counted once per side, and a same-county contract counts on both sides of that county."""
        for side, code in ((OUTFLOW, self.seller_region), (INFLOW, self.buyer_region)):
            for area in _area_chain(code):
                yield (area, self.year, side, self.category), 1, self.amount_fen, self.technology_amount_fen


@dataclass(frozen=True)
class CountedAward:
    """What one award contributes to its beneficiary's areas, as last counted."""

    region: str
    year: int
    programme: str
    award_fen: int

    @classmethod
    def from_event(cls, data: Mapping[str, Any]) -> CountedAward:
        programme = data.get("programme")
        year = data.get("policy_year")
        if programme not in PROGRAMMES or not isinstance(year, int):
            raise FigureError(f"award event without a known programme and policy year: {programme!r}, {year!r}")
        return cls(str(data.get("beneficiary_region")), year, programme, wire_fen(data.get("award")))


def _region_of(party: Mapping[str, Any] | None) -> str | None:
    if not party:
        return None
    region = party.get("region")
    return region if isinstance(region, str) else None


def counted_after(event_type: str, data: Mapping[str, Any], before: CountedContract | None) -> CountedContract | None:
    """What a contract counts for after a registry event, given what it counted for before.

    - certified / amended with status certified: counted at the terms carried by the event (the full terms
      after the event), in the contract's policy year (the amendment's `policy_year`, else the original year);
    - revoked, or any status other than certified: counts nowhere;
    - an event type this version does not know: nothing changes.
    """
    if not event_type.startswith(RegistryEventType.PREFIX):
        return before
    status = data.get("status")
    if status is None:
        return before
    if status != COUNTING_STATUS:
        return None
    terms = data.get("terms") or {}
    year = data.get("policy_year")
    if before is not None and event_type != RegistryEventType.CERTIFIED:
        year = before.year  # amended contracts count in their original year
    if not isinstance(year, int):
        raise FigureError(f"a certified contract event without policy_year: {event_type}")
    category = terms.get("category")
    if category not in CATEGORIES:
        raise FigureError(f"unknown category {category!r}")
    return CountedContract(
        year=year,
        category=category,
        amount_fen=wire_fen(terms.get("amount")),
        technology_amount_fen=wire_fen(terms.get("technology_amount")),
        seller_region=_region_of(terms.get("seller")),
        buyer_region=_region_of(terms.get("buyer")),
    )


FigureKey = tuple[str, int, str, str]  # (region, year, side, category or programme)


class FigureDeltas:
    """The net change a batch of events makes to the stored figures (applied in one transaction).

    Kept per party's own code (the county, or the prefecture or region code an old event may carry) and rolled
    up to every area above it only in `items()`, once per batch: a contract costs two additions, not one per
    area, and a sum rolled up once equals the sum of the roll-ups."""

    def __init__(self) -> None:
        self._at_code: dict[FigureKey, list[int]] = {}

    def _add(self, key: FigureKey, count: int, amount_fen: int, technology_amount_fen: int) -> None:
        entry = self._at_code.get(key)
        if entry is None:
            self._at_code[key] = [count, amount_fen, technology_amount_fen]
        else:
            entry[0] += count
            entry[1] += amount_fen
            entry[2] += technology_amount_fen

    def _count(self, record: CountedContract, sign: int) -> None:
        year, category = record.year, record.category
        amount, technology = sign * record.amount_fen, sign * record.technology_amount_fen
        if _area_chain(record.seller_region):  # a party outside Ningxia counts nowhere in its figures
            self._add((record.seller_region, year, OUTFLOW, category), sign, amount, technology)
        if _area_chain(record.buyer_region):
            self._add((record.buyer_region, year, INFLOW, category), sign, amount, technology)

    def move(self, before: CountedContract | None, after: CountedContract | None) -> None:
        """Subtract what a contract counted for, add what it counts for now."""
        if before == after:
            return
        if before is not None:
            self._count(before, -1)
        if after is not None:
            self._count(after, 1)

    def move_award(self, before: CountedAward | None, after: CountedAward | None) -> None:
        """Subtract what an award counted for, add what it counts for now (net of claw-backs)."""
        if before == after:
            return
        for record, sign in ((before, -1), (after, 1)):
            if record is not None and _area_chain(record.region):
                self._add((record.region, record.year, SUBSIDY, record.programme), 0, sign * record.award_fen, 0)

    def items(self) -> list[tuple[FigureKey, int, int, int]]:
        """Non-zero net changes per (area, year, side, category), every area above a party's code included, in
        key order (a stable lock order for concurrent writers)."""
        totals: dict[FigureKey, list[int]] = {}
        for (code, year, side, category), (count, amount, technology) in self._at_code.items():
            if not (count or amount or technology):
                continue
            for area in _area_chain(code):
                key = (area, year, side, category)
                entry = totals.get(key)
                if entry is None:
                    totals[key] = [count, amount, technology]
                else:
                    entry[0] += count
                    entry[1] += amount
                    entry[2] += technology
        return [(key, *values) for key, values in sorted(totals.items()) if any(values)]

    def __len__(self) -> int:
        return len(self.items())


def is_region_code(code: str) -> bool:
    return code in ningxia_regions()


def region_level(code: str) -> str:
    return ningxia_regions()[code].level


__all__ = [
    "CATEGORIES",
    "CountedContract",
    "FigureDeltas",
    "FigureError",
    "INFLOW",
    "NINGXIA",
    "OUTFLOW",
    "PROGRAMMES",
    "SIDES",
    "SUBSIDY",
    "areas_of",
    "counted_after",
    "wire_fen",
]
