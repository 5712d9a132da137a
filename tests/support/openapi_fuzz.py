"""A bounded schemathesis run against a service's ASGI app with its lifespan running (issue 11, point 7): no
server error and no status code, content type or body the OpenAPI document does not declare.

It runs on PostgreSQL, the production store: SQLite takes strings (a NUL, say) that PostgreSQL refuses with a
500. schemathesis starts the app's lifespan on its own event loop thread at the first call and keeps it for every
later call; `serving(app)` stops it when the module's tests are done."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.python import asgi

from tests.support import postgres

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
# Examples per operation: the default keeps each service's run under a minute on a small machine;
# TCR_TEST_FUZZ_EXAMPLES=200 makes a longer hunt.
MAX_EXAMPLES = int(os.environ.get("TCR_TEST_FUZZ_EXAMPLES", "8"))

# What every fuzzed service is started with: generous failure limits (every request comes from one address) and
# a short DNS wait for generated webhook hosts.
FUZZ_ENV = {
    "TCR_RATE_LIMIT_FAILURES_PER_ADDRESS": "100000/minute",
    "TCR_RATE_LIMIT_FAILURES_PER_KEY": "100000/minute",
    "TCR_WEBHOOK_RESOLVE_TIMEOUT": "0.5",
    "TCR_DEMO": "0",
}


@contextlib.contextmanager
def fresh_database(prefix: str) -> Iterator[str]:
    """A new PostgreSQL database (the `postgres_server` fixture must be up), dropped afterwards."""
    url = postgres.create_database(prefix)
    try:
        yield url
    finally:
        postgres.drop_database(url)


@contextlib.contextmanager
def serving(env: dict[str, str]) -> Iterator[None]:
    """The environment a fuzzed app is built in; on exit, every lifespan schemathesis started is stopped."""
    with _environment({**FUZZ_ENV, **env}):
        try:
            yield
        finally:
            asgi.shutdown_lifespans()


@contextlib.contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    import pytest

    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        yield


def fast(case) -> None:
    """Long polls answer at once: waiting would only make the run slower."""
    if case.query:
        for name in ("wait", "timeout"):
            if name in case.query:
                case.query[name] = 0


def declared_media_types(document: dict, path: str, method: str = "get", status: str = "200") -> set[str]:
    return set(document["paths"][path][method]["responses"][status].get("content", {}))
