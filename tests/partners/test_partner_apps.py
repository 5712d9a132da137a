"""The partner tests' service apps (tests/partners/registry_webhooks_app.py) add webhooks only to a service that
does not mount them itself. When the registry mounts them, a second router and worker would split the wake-ups:
the registry's router would `reload()` a worker that is not running, and a new subscription would wait for the
running supervisor's periodic rescan (docs/performance.md, webhooks, round 5)."""

from __future__ import annotations

from tcr_registry import bootstrap
from tests.partners.conftest import ADMIN_KEY
from tests.partners.registry_webhooks_app import create_app, mounts_subscriptions


def test_the_registry_with_webhooks_is_the_registry_itself_with_one_router_and_one_worker(tmp_path, monkeypatch):
    monkeypatch.setenv("TCR_REGISTRY_DATABASE_URL", f"sqlite:///{tmp_path / 'registry.db'}")
    monkeypatch.setenv("TCR_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TCR_ADMIN_KEY", ADMIN_KEY)
    monkeypatch.setenv("TCR_DEMO", "0")
    registry = bootstrap.create_app()
    assert mounts_subscriptions(registry)
    wrapped = create_app()
    assert len(wrapped.routes) == len(registry.routes)  # nothing added: no second subscriptions router
    assert wrapped.router.lifespan_context.__qualname__ == registry.router.lifespan_context.__qualname__
    assert "/v1/subscriptions" in wrapped.openapi()["paths"]  # the schema is built again, whole
