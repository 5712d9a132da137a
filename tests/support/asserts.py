"""Assertions and waits every service's tests use: RFC 9457 problems, and polling with a deadline (never a
fixed sleep)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx

T = TypeVar("T")
PROBLEM_JSON = "application/problem+json"


async def wait_until(
    probe: Callable[[], Awaitable[T]], timeout: float = 15.0, interval: float = 0.02, what: str = "condition"
) -> T:
    """Poll `probe` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


def assert_problem(response: httpx.Response, status: int, field: str | None = None) -> dict:
    """An RFC 9457 problem with this status; with `field`, its `errors` list names that field."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers["content-type"]
    body = response.json()
    assert body["status"] == status
    assert body["title"] and body["detail"] and body["type"]
    if field is not None:
        fields = [e["field"] for e in body.get("errors", [])]
        assert field in fields, f"{field!r} not named in {fields}: {body}"
    return body
