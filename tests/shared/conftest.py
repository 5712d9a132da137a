"""Fixtures for the shared-kernel tests: the real Redis server for the rate limits shared by replicas."""

from __future__ import annotations

import os
import socket

import pytest

REDIS_URL = os.environ.get("TCR_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def redis_problem() -> str | None:
    host, _, rest = REDIS_URL.removeprefix("redis://").partition(":")
    port = int(rest.split("/")[0] or 6379)
    try:
        with socket.create_connection((host, port), timeout=2):
            return None
    except OSError as exc:
        return f"Redis at {REDIS_URL} is unreachable: {exc}"


@pytest.fixture(scope="session")
def redis_server() -> str:
    problem = redis_problem()
    if problem:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{problem} (CI=true: the shared rate limit tests may not be skipped)", pytrace=False)
        pytest.skip(problem)
    return REDIS_URL


@pytest.fixture(params=["memory", "redis"])
def rate_limit_storage(request) -> str:
    """Each rate limit test runs on the in-process storage and on the real Redis server."""
    if request.param == "memory":
        return "memory://"
    return request.getfixturevalue("redis_server")
