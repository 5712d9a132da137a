"""The OpenAPI document tells the truth (issue 11, point 7): a bounded schemathesis run against the test
publisher (the shared feed and webhook routers, mounted as a service mounts them, with `install_problem_openapi`)
finds no server error and no status code or content type the document does not declare."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import create_engine

from tcr_shared.platform.problems import PROBLEM_JSON
from tests.partners.conftest import ADMIN, ADMIN_KEY

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@pytest.fixture
def publisher_schema(tmp_path, monkeypatch):
    from tests.partners import publisher_app

    db = tmp_path / "publisher.db"
    engine = create_engine(f"sqlite:///{db}")
    publisher_app.metadata.create_all(engine)  # what the app's lifespan does; the ASGI calls run without it
    engine.dispose()
    monkeypatch.setenv("TCR_TEST_PUBLISHER_DB", str(db))
    monkeypatch.setenv("TCR_TEST_PUBLISHER_DATABASE_URL", "")
    monkeypatch.setenv("TCR_ADMIN_KEY", ADMIN_KEY)
    monkeypatch.setenv("TCR_WEBHOOK_RESOLVE_TIMEOUT", "0.5")
    app = publisher_app.create_app()
    return schemathesis.openapi.from_asgi("/openapi.json", app)


schema = schemathesis.pytest.from_fixture("publisher_schema")


@schema.exclude(path_regex=r"/stream$").parametrize()  # an endless stream; its declaration is checked below
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_error_and_nothing_undocumented(case):
    if case.query and "wait" in case.query:
        case.query["wait"] = 0  # a long poll would only make the run slower
    case.call_and_validate(headers=ADMIN, checks=CHECKS)


def test_every_error_answer_is_declared_as_problem_json(publisher_schema):
    document = publisher_schema.raw_schema
    assert "Problem" in document["components"]["schemas"]
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            errors = {code: r for code, r in operation["responses"].items() if code.startswith(("4", "5"))}
            assert {"401", "422", "429"} <= errors.keys(), (method, path)
            for code, response in errors.items():
                assert list(response["content"]) == [PROBLEM_JSON], (method, path, code)
            if path.endswith("/stream"):
                assert list(operation["responses"]["200"]["content"]) == ["text/event-stream"]
            if method != "get":
                assert {"409", "412", "413"} <= errors.keys(), (method, path)
