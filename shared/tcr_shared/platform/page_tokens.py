"""Opaque page tokens for paginated lists: `next_page_token` out, `page_token` back in.

A token is the URL-safe base64 (no padding) of `<kind>:<value>`, where kind names what the list is ordered by
(`p` a feed position, `after` an id). A token that this service did not issue, or that names another kind, is a
422 problem naming the field, never a crash: decoding checks the kind, the shape and the range.
"""

from __future__ import annotations

import base64
import binascii

from tcr_shared.platform.problems import Problem, field_error

MAX_POSITION = 2**63 - 1  # BIGINT


def encode(kind: str, value: str | int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{value}".encode()).decode().rstrip("=")


def _value(token: str, kind: str, field: str) -> str:
    try:
        text = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    found, _, value = text.partition(":")
    if found != kind or not value or len(value) > 200:
        raise _invalid(field)
    return value


def decode_position(token: str, kind: str = "p", field: str = "page_token") -> int:
    """A token that carries a feed position (0 .. 2^63-1)."""
    value = _value(token, kind, field)
    if not value.isascii() or not value.isdigit() or int(value) > MAX_POSITION:
        raise _invalid(field)
    return int(value)


def decode_text(token: str, kind: str = "after", field: str = "page_token") -> str:
    """A token that carries an id (printable, no controls)."""
    value = _value(token, kind, field)
    if not value.isprintable():
        raise _invalid(field)
    return value


def _invalid(field: str) -> Problem:
    message = "is not a page token this service issued; pass next_page_token unchanged"
    return Problem(422, f"{field} {message}.", errors=[field_error(field, message)])
