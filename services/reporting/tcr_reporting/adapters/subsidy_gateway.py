"""The subsidy service's API as the what-if page uses it: the rule sets (`GET /v1/programmes`) and simulations
(`POST /v1/simulations`, `GET /v1/simulations/{id}`), always asked with the caller's own key, so the subsidy
service decides who may simulate and records who did. The browser talks to the reporting service only (one
origin, one cookie); the reporting service passes the subsidy service's answers through unchanged."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from tcr_shared.platform.problems import Problem

# A simulation replays the whole history in memory: seconds, not milliseconds, on a large one.
SIMULATION_TIMEOUT_SECONDS = 60.0
RETRY_AFTER_SECONDS = "5"


@dataclass(frozen=True)
class Passed:
    """A subsidy service answer to pass through: its status, body bytes and content type."""

    status: int
    content: bytes
    media_type: str
    location: str | None = None


class SubsidyGateway:
    def __init__(self, base_url: str, client: httpx.AsyncClient | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = client or httpx.AsyncClient(timeout=httpx.Timeout(SIMULATION_TIMEOUT_SECONDS, connect=5.0))

    async def programmes(self, key: str) -> dict[str, Any]:
        """The rule sets, each in the shape a candidate takes. Raises a Problem the page can show."""
        answer = await self._send("GET", "/v1/programmes", key)
        if answer.status != 200:
            raise Problem(answer.status if answer.status in (401, 403) else 502, _detail(answer))
        return json.loads(answer.content)

    async def simulate(self, key: str, body: bytes) -> Passed:
        return await self._send("POST", "/v1/simulations", key, body)

    async def simulation(self, key: str, simulation_id: str) -> Passed:
        # quoted: an id with a control character is a 404 of the subsidy service, not an httpx InvalidURL (500)
        return await self._send("GET", f"/v1/simulations/{quote(simulation_id, safe='')}", key)

    async def _send(self, method: str, path: str, key: str, body: bytes | None = None) -> Passed:
        headers = {"Authorization": f"Bearer {key}", "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            response = await self._client.request(method, self.base_url + path, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise Problem(
                504,
                f"The subsidy service did not answer {method} {path} in time; try a shorter span of years.",
                title="Gateway timeout",
                headers={"Retry-After": RETRY_AFTER_SECONDS},
            ) from exc
        except httpx.TransportError as exc:
            raise Problem(
                503,
                f"The subsidy service ({self.base_url}), which runs simulations, cannot be reached; try again shortly.",
                headers={"Retry-After": RETRY_AFTER_SECONDS},
            ) from exc
        return Passed(
            response.status_code,
            response.content,
            response.headers.get("content-type", "application/json"),
            response.headers.get("location"),
        )

    async def aclose(self) -> None:
        await self._client.aclose()


def _detail(answer: Passed) -> str:
    try:
        body = json.loads(answer.content)
    except ValueError:
        body = {}
    detail = body.get("detail") if isinstance(body, dict) else None
    return f"The subsidy service answered {answer.status}" + (f": {detail}" if detail else ".")
