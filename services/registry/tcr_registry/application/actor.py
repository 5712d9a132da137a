"""Who is acting: a registration point, with its jurisdiction."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PointActor:
    point_id: str
    jurisdiction: str  # 6401 ... 6405, or 6400 for the whole region
    number: str  # two digits

    @property
    def registration_prefix(self) -> str:
        return f"{self.jurisdiction}{self.number}"
