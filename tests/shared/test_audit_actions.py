"""Every write route of every service has a name in the audit trail (tcr_shared.platform.audit): an act recorded
under a route function's bare name (`run`, `create`) would be ambiguous, so a new write route without one fails
here."""

from __future__ import annotations

import pytest
from fastapi.routing import iter_route_contexts

from tcr_shared.platform.audit import WRITES


def _registry(tmp_path):
    from tcr_registry.adapters.http.audit import ACTIONS
    from tcr_registry.bootstrap import create_app
    from tcr_registry.settings import RegistrySettings

    settings = RegistrySettings(registry_database_url=f"sqlite:///{tmp_path / 'r.db'}", data_dir=tmp_path)
    return create_app(settings), ACTIONS


def _subsidy(tmp_path):
    from tcr_subsidy.adapters.http.app import AUDIT_ACTIONS
    from tcr_subsidy.bootstrap import create_app
    from tcr_subsidy.settings import SubsidySettings

    return create_app(SubsidySettings(subsidy_database_url=f"sqlite:///{tmp_path / 's.db'}")), AUDIT_ACTIONS


def _reporting(tmp_path):
    from tcr_reporting.adapters.http.app import AUDIT_ACTIONS
    from tcr_reporting.bootstrap import create_app
    from tcr_reporting.settings import ReportingSettings

    return create_app(ReportingSettings(reporting_database_url=f"sqlite:///{tmp_path / 'p.db'}")), AUDIT_ACTIONS


@pytest.mark.parametrize("build", [_registry, _subsidy, _reporting], ids=["registry", "subsidy", "reporting"])
def test_every_write_route_has_an_action_name(build, tmp_path):
    app, actions = build(tmp_path)
    routes = list(iter_route_contexts(app.routes))
    writes = [r for r in routes if r.endpoint is not None and set(r.methods or ()) & WRITES]
    assert len(writes) >= 2
    unnamed = [f"{r.methods} {r.path} ({r.endpoint.__name__})" for r in writes if r.endpoint.__name__ not in actions]
    assert unnamed == []
    assert all("." in action for action in actions.values())
    assert any(r.path == "/v1/audit" and r.methods == {"GET"} for r in routes)


@pytest.mark.parametrize("build", [_registry, _subsidy, _reporting], ids=["registry", "subsidy", "reporting"])
def test_the_audit_route_is_documented_with_its_problems(build, tmp_path):
    app, _ = build(tmp_path)
    operation = app.openapi()["paths"]["/v1/audit"]["get"]
    names = {p["name"] for p in operation["parameters"]}
    assert {"from", "to", "key_id", "action", "limit", "page_token"} <= names
    for status in ("401", "403", "422"):
        assert "application/problem+json" in operation["responses"][status]["content"], status
