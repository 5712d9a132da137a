"""Report calendar (clause 十六): the report for year Y is due by 31 January of Y+1, and a report for a year
that has not ended (in Asia/Shanghai) is provisional."""

from __future__ import annotations

from datetime import date, datetime

from tcr_shared.language.policy_time import SHANGHAI

MIN_YEAR = 2000


def due_date(year: int) -> date:
    return date(year + 1, 1, 31)


def current_year(now: datetime) -> int:
    return now.astimezone(SHANGHAI).year


def is_provisional(year: int, now: datetime) -> bool:
    return year >= current_year(now)


def year_in_range(year: int, now: datetime) -> bool:
    return MIN_YEAR <= year <= current_year(now)
