"""Dates that decide a policy year are taken in Asia/Shanghai."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")


def policy_day(moment: datetime) -> date:
    """The day in Asia/Shanghai (a rule set's effective date is such a day; the policy year is its year)."""
    if moment.tzinfo is None:
        raise ValueError("a policy moment must carry its UTC offset")
    return moment.astimezone(SHANGHAI).date()


def policy_year(moment: datetime) -> int:
    return policy_day(moment).year


def now_utc() -> datetime:
    return datetime.now(UTC)
