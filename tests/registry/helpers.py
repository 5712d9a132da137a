"""Helpers for the registry's API tests: one running registry per backend and module, fresh points and keys
on demand, and waiting (with a deadline, never a fixed sleep) for the asynchronous contract index."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from tests.support.registry import ADMIN_KEY, Point, auth, contract_body

T = TypeVar("T")
ADMIN = auth(ADMIN_KEY)
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


@dataclass
class RegistryEnv:
    """A registry with its lifespan running (in-process), reached over httpx's ASGI transport."""

    client: httpx.AsyncClient
    backend: str
    url: str
    _numbers: dict[str, int] = field(default_factory=lambda: collections.defaultdict(int))
    _keys: dict[str, str] = field(default_factory=dict)

    @property
    def runtime(self):
        return self.client.app.state.runtime  # type: ignore[attr-defined]

    async def point(self, jurisdiction: str = "6401") -> Point:
        """A new registration point with a fresh number (so its registration numbers start at 000001)."""
        self._numbers[jurisdiction] += 1
        number = f"{self._numbers[jurisdiction]:02d}"
        r = await self.client.post(
            "/v1/points",
            json={"number": number, "name": f"登记点 {jurisdiction}-{number}", "jurisdiction": jurisdiction},
            headers=ADMIN,
        )
        assert r.status_code == 201, r.text
        point_id = r.json()["id"]
        r = await self.client.post("/v1/api-keys", json={"role": "point", "point_id": point_id}, headers=ADMIN)
        assert r.status_code == 201, r.text
        return Point(point_id, r.json()["secret"], jurisdiction, number)

    async def key(self, role: str) -> dict[str, str]:
        """Authorization headers of a (cached) key of this role."""
        if role == "admin":
            return ADMIN
        if role not in self._keys:
            r = await self.client.post("/v1/api-keys", json={"role": role}, headers=ADMIN)
            assert r.status_code == 201, r.text
            self._keys[role] = r.json()["secret"]
        return auth(self._keys[role])

    async def submit(self, point: Point, **overrides: Any) -> dict:
        r = await self.client.post("/v1/contracts", json=contract_body(**overrides), headers=point.headers)
        assert r.status_code == 201, r.text
        return r.json()

    async def certified(self, point: Point, certified_at: str = "2025-03-10T10:00:00+08:00", **overrides) -> dict:
        contract = await self.submit(point, **overrides)
        r = await self.client.post(
            f"/v1/contracts/{contract['id']}/certify",
            json={"certified_at": certified_at, "expert_review_ref": "ZJPS-2025-001"},
            headers=point.headers,
        )
        assert r.status_code == 200, r.text
        return r.json()

    async def head(self) -> int:
        """The feed's head: the highest committed position."""
        r = await self.client.get("/v1/events", params={"after": 0, "limit": 1}, headers=ADMIN)
        assert r.status_code == 200, r.text
        return r.json()["head"]

    async def feed(self, after: int = 0) -> list[dict]:
        """Every public event after `after`."""
        events: list[dict] = []
        while True:
            r = await self.client.get("/v1/events", params={"after": after, "limit": 1000}, headers=ADMIN)
            assert r.status_code == 200, r.text
            page = r.json()
            events += page["events"]
            if page["next_after"] == after:
                return events
            after = page["next_after"]

    async def index_caught_up(self) -> None:
        """Wait until the contract index (list projection) has applied everything in the log."""
        head = await self.head()

        async def reached() -> bool:
            return self.runtime.index_follower.status.position >= head

        await wait_until(reached, what=f"the contract index to reach position {head}")

    async def list(self, headers: dict[str, str], **params: Any) -> dict:
        r = await self.client.get("/v1/contracts", params=params, headers=headers)
        assert r.status_code == 200, r.text
        return r.json()
