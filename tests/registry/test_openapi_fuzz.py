"""The registry's OpenAPI document tells the truth (issue 11, point 7): a bounded schemathesis run against the
registry's ASGI app (PostgreSQL, lifespan running) finds no server error and nothing undocumented."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tcr_shared.platform.problems import PROBLEM_JSON
from tests.support.openapi_fuzz import CHECKS, MAX_EXAMPLES, fast, fresh_database, serving
from tests.support.registry import ADMIN, ADMIN_KEY


@pytest.fixture(scope="module")
def registry_schema(request, tmp_path_factory):
    request.getfixturevalue("postgres_server")
    data = tmp_path_factory.mktemp("registry-fuzz")
    env = {
        "TCR_ADMIN_KEY": ADMIN_KEY,
        "TCR_DATA_DIR": str(data),
        "TCR_ACCESS_LOG": "0",
    }
    with fresh_database("tcr_registry_fuzz") as database, serving({**env, "TCR_REGISTRY_DATABASE_URL": database}):
        from tcr_registry.bootstrap import create_app

        yield schemathesis.openapi.from_asgi("/openapi.json", create_app())


schema = schemathesis.pytest.from_fixture("registry_schema")


@schema.exclude(path_regex=r"/stream$").parametrize()  # an endless stream
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_error_and_nothing_undocumented(case):
    fast(case)
    case.call_and_validate(headers=ADMIN, checks=CHECKS)


def test_every_error_answer_is_declared_as_problem_json(registry_schema):
    for path, item in registry_schema.raw_schema["paths"].items():
        for method, operation in item.items():
            errors = {code: r for code, r in operation["responses"].items() if code.startswith(("4", "5"))}
            assert {"401", "422", "429"} <= errors.keys() or path in ("/healthz", "/readyz"), (method, path)
            for code, response in errors.items():
                assert list(response["content"]) == [PROBLEM_JSON], (method, path, code)
