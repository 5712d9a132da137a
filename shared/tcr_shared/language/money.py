"""Money: yuan as Decimal with two places (fen). Never float."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal

FEN = Decimal("0.01")
ZERO = Decimal("0.00")
_MONEY_TEXT = re.compile(r"^(0|[1-9]\d{0,14})\.\d{2}$")


class MoneyFormatError(ValueError):
    """Raised for money that is not a string with exactly two decimals."""


def parse_money(value: object) -> Decimal:
    """Parse the wire form of money: a JSON string such as "9000000.00".

    A JSON number is refused on purpose: binary floats cannot carry fen exactly.
    """
    if not isinstance(value, str):
        raise MoneyFormatError('money must be a string with two decimals, such as "1200.00"')
    if not _MONEY_TEXT.match(value):
        raise MoneyFormatError(f"{value!r} is not money: expected digits, a point and exactly two decimals")
    return Decimal(value)


def round_fen(value: Decimal) -> Decimal:
    """Round half-up to the fen, as the policy requires."""
    return value.quantize(FEN, rounding=ROUND_HALF_UP)


def format_money(value: Decimal) -> str:
    return str(round_fen(value))


def to_fen(amount: Decimal) -> int:
    """Whole fen, exactly (stores and sums keep money as integers); more than two decimals is an error."""
    fen = amount * 100
    if fen != fen.to_integral_value():
        raise MoneyFormatError(f"{amount} has more than two decimals")
    return int(fen)


def from_fen(fen: int) -> Decimal:
    """Yuan with two places from whole fen."""
    return Decimal(int(fen)).scaleb(-2)


def fen_text(fen: int) -> str:
    """Whole fen as the wire form of money, e.g. 123456 -> "1234.56"."""
    return format_money(from_fen(fen))
