"""The one text rule for everything a person types into tcr: names, titles, reasons, labels and free text.

A text is accepted when it holds none of the characters that break stores, logs or readers, and it is kept in
Unicode NFC so that one word has one spelling. Refused, with a message naming the character:

- C0 and C1 control characters (U+0000-U+001F, U+007F-U+009F): U+0000 stops PostgreSQL, escape and bell codes
  reach terminals. Tab and newline are allowed only in long free text (`long=True`, e.g. a reason);
- bidirectional overrides and isolates (U+202A-U+202E, U+2066-U+2069): they make text read differently from how
  it is stored ("Trojan Source");
- zero-width characters (U+200B-U+200D, U+2060, U+FEFF): two names that look alike must be alike;
- lone surrogates (U+D800-U+DFFF): not text; no UTF-8 encoder accepts them.

Plain functions (`clean_text`) for code, pydantic Annotated types (`Name`, `Title`, `Label`, `Reason`,
`LongText`, or `text_type(...)` for other lengths) for request models: a refusal there is a 422 naming the field.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from functools import cache
from typing import Annotated

from pydantic import AfterValidator, Field

EARLIEST_SIGNED_ON = date(1985, 1, 1)  # the first technology contract rules in China (1985); earlier is a typo

_LONG_TEXT_ALLOWED = frozenset("\t\n")
_BIDI = frozenset(range(0x202A, 0x202F)) | frozenset(range(0x2066, 0x206A))
_ZERO_WIDTH = frozenset((0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF))


class TextError(ValueError):
    """A text breaks the rule; the message names the first offending character and says what it is."""


def forbidden_kind(char: str, *, long: bool = False) -> str | None:
    """What is wrong with one character (None: nothing)."""
    code = ord(char)
    if code < 0x20 or 0x7F <= code <= 0x9F:
        if long and char in _LONG_TEXT_ALLOWED:
            return None
        return "a control character"
    if code in _BIDI:
        return "a bidirectional override or isolate"
    if code in _ZERO_WIDTH:
        return "a zero-width character"
    if 0xD800 <= code <= 0xDFFF:
        return "a lone surrogate"
    return None


@cache  # built at the first text checked (65,536 characters through the rule: about 30 ms)
def _any_forbidden(long: bool) -> re.Pattern[str]:
    """One regular expression matching every character forbidden_kind refuses (all of them lie below U+10000;
    tests/shared/test_text.py checks every code point): a text is scanned in C, and only a refused one is walked
    character by character for the message. forbidden_kind stays the rule; this is its index."""
    codes = [code for code in range(0x10000) if forbidden_kind(chr(code), long=long)]
    ranges, start = [], codes[0]
    for previous, code in zip(codes, codes[1:] + [None]):
        if code != previous + 1:
            ranges.append(f"\\U{start:08x}-\\U{previous:08x}" if previous > start else f"\\U{start:08x}")
            start = code
    return re.compile(f"[{''.join(ranges)}]")


def clean_text(value: str, *, long: bool = False, max_length: int | None = None) -> str:
    """`value` in NFC, or TextError naming what is wrong. `long=True` admits tab and newline (free text)."""
    if _any_forbidden(long).search(value):
        for position, char in enumerate(value):
            kind = forbidden_kind(char, long=long)
            if kind:
                raise TextError(f"contains U+{ord(char):04X} ({kind}) at position {position}")
    cleaned = unicodedata.normalize("NFC", value)
    if max_length is not None and len(cleaned) > max_length:
        raise TextError(f"is {len(cleaned)} characters long; at most {max_length} are allowed")
    return cleaned


def text_type(max_length: int, *, long: bool = False, min_length: int = 1) -> object:
    """An Annotated str for pydantic models that applies the text rule, e.g. `text_type(80)` for a short label."""

    def validate(value: str) -> str:
        return clean_text(value, long=long, max_length=max_length)

    return Annotated[str, Field(min_length=min_length, max_length=max_length), AfterValidator(validate)]


Name = text_type(200)  # a party's, a person's or a point's name
Title = text_type(500)  # a contract's or project's title
Label = text_type(100)  # an API key's label, a short tag
Reason = text_type(2000, long=True)  # why something was withdrawn, refused or amended
LongText = text_type(10_000, long=True)  # descriptions and other free text
