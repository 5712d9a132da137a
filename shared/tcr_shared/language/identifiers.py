"""Party identifiers: unified social credit codes (GB 32100) and resident identity numbers (GB 11643)."""

from __future__ import annotations

import hashlib
import uuid
from functools import lru_cache

from stdnum.cn import ric, uscc
from stdnum.exceptions import ValidationError


def _canonical(text: str) -> str:
    return "".join(text.split()).replace("-", "").upper()


def canonical_credit_code(code: str) -> str:
    """The one form a unified social credit code is stored, compared and keyed in (GB 32100's own form): upper
    case, without spaces or hyphens. `9164...1l`, `9164...1L` and `9164-...1L` are one party, hence one cap."""
    return _canonical(code)


def canonical_result_id(result_id: str) -> str:
    """The one form of a project's `result_id` (patent or results registration number), by the same rule as
    credit codes: `zl 2021....x` and `ZL2021....X` are one project under the per-project cap."""
    return _canonical(result_id)


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


def uuid5_text(namespace: uuid.UUID, name: str) -> str:
    """`str(uuid.uuid5(namespace, name))` without building UUID objects: feeds and award decisions compute one
    per event, and the object round trip was a visible cost there."""
    digest = bytearray(hashlib.sha1(namespace.bytes + name.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    x = digest.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"
