"""What every tcr service exposes for operations: JSON logs with a request id, Prometheus metrics,
/healthz and /readyz, and a refusal of bodies over 1 MiB."""

from __future__ import annotations

import json
import logging
import sys
import time
import uuid
from collections.abc import Awaitable, Callable

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tcr_shared.platform.problems import Problem, problem_response

MAX_BODY_BYTES = 1024 * 1024

# FastAPI's built-in OpenTelemetry hooks cost ~0.5 ms a request here even with no exporter configured;
# tcr exports Prometheus metrics itself. Pass as FastAPI(telemetry=NATIVE_TELEMETRY_OFF).
NATIVE_TELEMETRY_OFF = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}


class JsonLogFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("request_id", "method", "path", "status", "duration_ms", "service"):
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str = "INFO") -> None:
    root = logging.getLogger()
    if any(isinstance(h.formatter, JsonLogFormatter) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter())
    root.handlers = [handler]
    root.setLevel(level)
    # Followers long-poll their feeds: httpx would log a line per poll; the access logs already say what happened.
    logging.getLogger("httpx").setLevel(logging.WARNING)


class Metrics:
    """One registry of metrics per app, so several apps can live in one test process."""

    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "tcr_http_requests_total", "HTTP requests", ["service", "method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "tcr_http_request_seconds",
            "HTTP request latency",
            ["service", "method", "route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
        )
        self.service = service

    def counter(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
        return Counter(name, doc, list(labels), registry=self.registry)

    def gauge(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(name, doc, list(labels), registry=self.registry)

    def render(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class BodyLimit:
    """Refuses bodies over MAX_BODY_BYTES with 413, whether announced by Content-Length or streamed."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        announced = None
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit():
                announced = int(value)
        if announced is not None:
            if announced > self.limit:
                await problem_response(self._too_large())(scope, receive, send)
                return
            await self.app(scope, receive, send)  # the server holds the body to its announced length
            return
        # No Content-Length (chunked): read the body up to the limit before the app sees any of it. (Raising
        # from inside receive() does not work: the framework's body parser turns any error into a 400.)
        buffered: list[Message] = []
        received = 0
        while True:
            message = await receive()
            buffered.append(message)
            if message["type"] != "http.request":
                break
            received += len(message.get("body", b""))
            if received > self.limit:
                await problem_response(self._too_large())(scope, receive, send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            if buffered:
                return buffered.pop(0)
            return await receive()

        await self.app(scope, replay, send)

    def _too_large(self) -> Problem:
        return Problem(413, f"The body exceeds {self.limit} bytes (1 MiB); nothing was stored.")


class RequestContext:
    """Request id, metrics and the access log, as plain ASGI middleware (cheap on the hot path)."""

    def __init__(self, app: ASGIApp, metrics: Metrics, service: str, access_log: logging.Logger) -> None:
        self.app = app
        self.metrics = metrics
        self.service = service
        self.access_log = access_log
        # (method, route, status) -> the labelled counter and histogram: prometheus_client's labels() costs
        # ~5 µs a call, a dict lookup ~0.1 µs (the same children; as many entries as prometheus keeps anyway)
        self._children: dict[tuple, tuple] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = next((v.decode() for k, v in scope["headers"] if k == b"x-request-id"), None) or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"]
            children = self._children.get((method, route, status))
            if children is None:
                children = (
                    self.metrics.requests.labels(self.service, method, route, status),
                    self.metrics.latency.labels(self.service, method, route),
                )
                self._children[(method, route, status)] = children
            children[0].inc()
            children[1].observe(elapsed)
            if self.access_log.isEnabledFor(logging.INFO):
                self.access_log.info(
                    "request",
                    extra={
                        "request_id": request_id,
                        "method": method,
                        "path": scope["path"],
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                        "service": self.service,
                    },
                )


def all_ready(*checks: Callable[[], Awaitable[bool]]) -> Callable[[], Awaitable[bool]]:
    """One readiness check from several (e.g. `database_ready(engine)` and the followers' health): ready when each
    is; a check that raises counts as not ready (the probe asks again in a moment)."""

    async def ready() -> bool:
        for check in checks:
            try:
                if not await check():
                    return False
            except Exception:
                logging.getLogger("tcr.ready").warning("readiness check failed", exc_info=True)
                return False
        return True

    return ready


def instrument(
    app: FastAPI, service: str, ready: Callable[[], Awaitable[bool]] | None = None, metrics: Metrics | None = None
) -> Metrics:
    """Pass `metrics` when the service registered its own counters before the app was built."""
    metrics = metrics or Metrics(service)
    access_log = logging.getLogger(f"tcr.{service}.access")

    app.add_middleware(RequestContext, metrics=metrics, service=service, access_log=access_log)
    app.add_middleware(BodyLimit)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict:
        return {"status": "ok", "service": service}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        ok = await all_ready(ready)() if ready else True
        return JSONResponse({"ready": ok, "service": service}, status_code=200 if ok else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics_endpoint() -> Response:
        return metrics.render()

    return metrics
