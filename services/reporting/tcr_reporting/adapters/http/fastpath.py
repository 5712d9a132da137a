"""A lean ASGI path for the hottest read: `GET /v1/regions/{code}/metrics[?year=Y]`.

Through FastAPI a metrics request costs ~250 µs of CPU, nearly all of it routing, dependency solving and
parameter validation, although the answer itself is bytes cached per projection version. This layer sits inside
`RequestContext` (so the request id, the Prometheus figures and the access log are unchanged) and answers the
plain, valid request directly:

- the Bearer key is checked exactly as the API's dependency does (bootstrap admin key, else the same
  `RegistryKeyResolver` and its cache), role analyst or admin;
- `Accept` goes through the same `negotiate`; the region must be a known code and the year (default: this
  policy year) in range;
- the body is `ReportingQueries.metrics_json`, the JSON serialised once per projection version, with the same
  headers the FastAPI route sends (`content-length`, `content-type: application/json`).

Anything else - no or unknown key, another role, an unknown region, a year that is not plain digits or is out of
range, an unacceptable `Accept`, HEAD - is not answered here: the request goes on to the FastAPI route, which
produces the problem+json (401/403/404/406/422) exactly as before, so the fast path never decides those errors.
The one exception: when the resolver cannot ask the registry (503), that Problem is rendered here by the same
`problem_response` the route's exception handler uses, so the registry is not asked twice for one request.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from tcr_reporting.adapters.http.negotiation import JSON, negotiate
from tcr_reporting.domain.calendar import current_year, year_in_range
from tcr_shared.language.regions import ningxia_regions
from tcr_shared.platform.problems import Problem, problem_response

METRICS_ROUTE = "/v1/regions/{code}/metrics"
READER_ROLES = frozenset({"analyst", "admin"})
_METRICS_PATH = re.compile(r"^/v1/regions/([^/]+)/metrics$")
_PLAIN_YEAR = re.compile(rb"^[1-9][0-9]{0,5}$")


def bearer_secret_of(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The key of `Authorization: Bearer <key>` as `tcr_shared.platform.auth.bearer_secret` reads it; None if absent."""
    for name, value in headers:
        if name == b"authorization":
            scheme, _, secret = value.decode("latin-1").partition(" ")
            if scheme.lower() != "bearer" or not secret.strip():
                return None
            return secret.strip()
    return None


def plain_year(query: bytes) -> tuple[bool, int | None]:
    """(usable, year) from the query string: usable only when it is empty or exactly `year=<digits>`;
    anything else (repeated, blank, signs, other parameters) is left to the FastAPI route's validation."""
    if not query:
        return True, None
    name, sep, value = query.partition(b"=")
    if name != b"year" or not sep or not _PLAIN_YEAR.match(value):
        return False, None
    return True, int(value)


@dataclass(frozen=True)
class RouteLabel:
    """What `RequestContext` reads from scope["route"] (its `path`) for the request metrics' route label."""

    path: str


class MetricsFastPath:
    def __init__(self, app: ASGIApp, runtime: Any) -> None:
        self.app = app
        self.runtime = runtime
        self._route = RouteLabel(METRICS_ROUTE)
        self._regions = ningxia_regions()

    def _is_admin_key(self, secret: str) -> bool:
        admin_key = self.runtime.settings.admin_key
        return bool(admin_key) and hmac.compare_digest(secret, admin_key)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        match = _METRICS_PATH.match(scope["path"])
        if match is None:
            await self.app(scope, receive, send)
            return
        try:
            body = await self._answer(scope, match.group(1))
        except Problem as problem:
            # the key resolver could not ask the registry (503): answered here, as the route's exception
            # handler would, rather than asking the registry a second time through the route
            scope["route"] = self._route
            await problem_response(problem, Request(scope))(scope, receive, send)
            return
        if body is None:  # not the plain valid case: the FastAPI route answers, errors included
            await self.app(scope, receive, send)
            return
        scope["route"] = self._route  # the same route label in the request metrics as through the router
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _answer(self, scope: Scope, code: str) -> bytes | None:
        runtime = self.runtime
        headers = scope["headers"]
        secret = bearer_secret_of(headers)
        if secret is None:
            return None
        if not self._is_admin_key(secret):
            principal = await runtime.resolver(secret)  # Problem(503) when the registry cannot be asked
            if principal is None or principal.role not in READER_ROLES:
                return None
        accept = next((v.decode("latin-1") for k, v in headers if k == b"accept"), None)
        if accept is not None:
            try:
                negotiate(accept, [JSON])
            except Problem:
                return None
        if code not in self._regions:
            return None
        usable, year = plain_year(scope.get("query_string", b""))
        if not usable:
            return None
        now = runtime.clock()
        if year is None:
            year = current_year(now)
        if not year_in_range(year, now):
            return None
        return await runtime.queries.metrics_json(code, year)
