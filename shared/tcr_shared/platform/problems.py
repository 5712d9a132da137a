"""RFC 9457 problem details for every error a tcr service returns."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tcr_shared.platform.outages import RETRY_AFTER_SECONDS, handled_bases, is_outage

PROBLEM_JSON = "application/problem+json"
_TITLES = {
    400: "Malformed request",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict with the contract's state",
    412: "Precondition failed",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Invalid request",
    428: "Precondition required",
    429: "Too many requests",
    500: "Internal error",
    503: "Service unavailable",
}


class Problem(Exception):
    """Raise anywhere in a request to answer with problem+json."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        title: str | None = None,
        type_: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title or _TITLES.get(status, "Error")
        self.type = type_ or f"https://tcr.example.gov.cn/problems/{self.title.lower().replace(' ', '-')}"
        self.errors = errors
        self.headers = headers or {}
        self.extra = extra


def problem_response(problem: Problem, request: Request | None = None) -> JSONResponse:
    body: dict[str, Any] = {
        "type": problem.type,
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
    }
    if request is not None:
        body["instance"] = request.url.path
        request_id = getattr(request.state, "request_id", None)
        if request_id:
            body["request_id"] = request_id
    if problem.errors:
        body["errors"] = problem.errors
    body.update(problem.extra)
    return JSONResponse(body, status_code=problem.status, media_type=PROBLEM_JSON, headers=problem.headers)


def field_error(field: str, message: str) -> dict[str, str]:
    return {"field": field, "message": message}


def _validation_errors(exc: RequestValidationError) -> tuple[int, str, list[dict[str, str]]]:
    errors = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            return 400, f"The body is not valid JSON: {err.get('ctx', {}).get('error', err.get('msg'))}", []
        location = [str(p) for p in err.get("loc", ()) if p not in ("body",)]
        message = err.get("msg", "invalid")
        ctx_error = err.get("ctx", {}).get("error")
        if ctx_error is not None and str(ctx_error) not in message:
            message = f"{message}: {ctx_error}"
        if err.get("type") == "extra_forbidden":
            message = "unknown field"
        errors.append(field_error(".".join(location) or "body", message))
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
    return 422, f"The request has {len(errors)} invalid field(s): {summary}", errors


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc, request)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        status, detail, errors = _validation_errors(exc)
        return problem_response(Problem(status, detail, errors=errors), request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else _TITLES.get(exc.status_code, "Error")
        return problem_response(Problem(exc.status_code, detail, headers=dict(exc.headers or {})), request)

    async def _database(request: Request, exc: Exception) -> JSONResponse:
        if is_outage(exc):
            return problem_response(outage_problem(), request)
        return _crashed(request)

    # Database errors are handled here, not by the catch-all below, so that an outage is an answer (503) that the
    # middleware sees and counts, not an exception that escapes the app.
    for base in handled_bases():
        app.add_exception_handler(base, _database)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        if is_outage(exc):
            return problem_response(outage_problem(), request)
        return _crashed(request)


def outage_problem() -> Problem:
    """503 with Retry-After: the database is unreachable for now; the same request may succeed in a moment."""
    return Problem(
        503,
        "The service's database is unreachable for now; retry the request shortly.",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def _crashed(request: Request) -> JSONResponse:
    logging.getLogger("tcr.http").exception("unhandled error")
    return problem_response(Problem(500, "The service failed to handle this request; it has been logged."), request)
