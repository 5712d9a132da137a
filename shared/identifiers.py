"""Party identifiers: unified social credit codes (GB 32100) and resident identity numbers (GB 11643)."""
from __future__ import annotations

from functools import lru_cache

from stdnum.cn import ric, uscc
from stdnum.exceptions import ValidationError


@lru_cache(maxsize=65536)  # the same organisations sign contract after contract
def credit_code_problem(code: str) -> str | None:
    """None when the unified social credit code is valid, else why it is not."""
    try:
        uscc.validate(code)
    except ValidationError as exc:
        return f"not a valid unified social credit code (统一社会信用代码): {exc.message}"
    return None


def id_number_problem(number: str) -> str | None:
    try:
        ric.validate(number)
    except ValidationError as exc:
        return f"not a valid resident identity number (居民身份证号码): {exc.message}"
    return None


def credit_code_with_check_digit(first17: str) -> str:
    """Complete seventeen characters into a valid code (used by demo data and tests)."""
    return first17 + uscc.calc_check_digit(first17)
