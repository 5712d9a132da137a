"""GB/T 2260 region codes: Ningxia's counties and prefectures, and the provincial prefixes elsewhere."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

NINGXIA = "640000"
PROVINCE_PREFIXES = frozenset(
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 50 51 52 53 54 61 62 63 64 65 71 81 82".split()
)


@dataclass(frozen=True)
class Region:
    code: str
    name_zh: str
    name_en: str
    level: str  # region | prefecture | county
    parent: str | None

    @property
    def name(self) -> dict[str, str]:
        return {"zh": self.name_zh, "en": self.name_en}


@lru_cache(maxsize=1)
def ningxia_regions() -> dict[str, Region]:
    text = resources.files("tcr_shared.language").joinpath("data/regions.csv").read_text(encoding="utf-8")
    rows = csv.DictReader(text.splitlines())
    return {r["code"]: Region(r["code"], r["name_zh"], r["name_en"], r["level"], r["parent"] or None) for r in rows}


def counties() -> list[Region]:
    return [r for r in ningxia_regions().values() if r.level == "county"]


def prefectures() -> list[Region]:
    return [r for r in ningxia_regions().values() if r.level == "prefecture"]


def is_in_ningxia(code: str | None) -> bool:
    return bool(code) and code.startswith("64")


def is_known_region(code: str) -> bool:
    """A Ningxia code must be on the list; elsewhere the province prefix is checked."""
    if len(code) != 6 or not code.isdigit():
        return False
    if is_in_ningxia(code):
        return code in ningxia_regions()
    return code[:2] in PROVINCE_PREFIXES


def prefecture_of(code: str) -> str | None:
    """The prefecture (six digits, e.g. 640100) a Ningxia county belongs to."""
    region = ningxia_regions().get(code)
    if region is None:
        return None
    if region.level == "county":
        return region.parent
    if region.level == "prefecture":
        return region.code
    return None


def area_prefix(area: str) -> str:
    """The code prefix an area stands for: 640000 -> 64, 640100 or 6401 -> 6401, 640205 -> 640205."""
    if len(area) == 6:
        while area.endswith("00") and len(area) > 2:
            area = area[:-2]
    return area


def lies_within(code: str | None, area: str) -> bool:
    """Whether a six-digit region lies in an area given as 2, 4 or 6 digits (64, 6401, 640100, 640205)."""
    return bool(code) and code.startswith(area_prefix(area))
