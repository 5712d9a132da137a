"""The reporting service's composition root: `create_app` builds the service from its settings (uvicorn --factory
tcr_reporting.bootstrap:create_app, or `tcr-reporting serve`)."""

from tcr_reporting.adapters.http.app import create_app

__all__ = ["create_app"]
