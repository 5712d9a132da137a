"""The subsidy service's OpenAPI document tells the truth (issue 11, point 7): a bounded schemathesis run against
its ASGI app (PostgreSQL, lifespan running, no registry reachable: its feed is simply unreachable) finds no server
error and nothing undocumented."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.support.openapi_fuzz import CHECKS, MAX_EXAMPLES, declared_media_types, fast, fresh_database, serving
from tests.support.processes import free_port

ADMIN_KEY = "test-admin-key-subsidy-fuzz"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture(scope="module")
def subsidy_schema(request, tmp_path_factory):
    request.getfixturevalue("postgres_server")
    data = tmp_path_factory.mktemp("subsidy-fuzz")
    env = {
        "TCR_ADMIN_KEY": ADMIN_KEY,
        "TCR_DATA_DIR": str(data),
        "TCR_REGISTRY_URL": f"http://127.0.0.1:{free_port()}",
    }
    with fresh_database("tcr_subsidy_fuzz") as database, serving({**env, "TCR_SUBSIDY_DATABASE_URL": database}):
        from tcr_subsidy.bootstrap import create_app

        yield schemathesis.openapi.from_asgi("/openapi.json", create_app())


schema = schemathesis.pytest.from_fixture("subsidy_schema")


@schema.exclude(path_regex=r"/stream$").parametrize()  # an endless stream
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_error_and_nothing_undocumented(case):
    fast(case)
    if case.query and case.query.get("min_position"):
        case.query["min_position"] = 0  # no registry to catch up with: waiting 10 s for a 503 proves nothing new
    case.call_and_validate(headers=ADMIN, checks=CHECKS)


def test_the_awards_csv_is_declared(subsidy_schema):
    assert {"application/json", "text/csv"} <= declared_media_types(subsidy_schema.raw_schema, "/v1/awards")
