"""The registry service's composition root: `create_app` builds the service from its settings (uvicorn --factory
tcr_registry.bootstrap:create_app, or `tcr-registry serve`)."""

from tcr_registry.adapters.http.app import create_app

__all__ = ["create_app"]
