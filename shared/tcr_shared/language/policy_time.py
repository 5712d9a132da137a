"""Dates that decide a policy year are taken in Asia/Shanghai."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")


def policy_year(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("a policy moment must carry its UTC offset")
    return moment.astimezone(SHANGHAI).year


def now_utc() -> datetime:
    return datetime.now(UTC)
