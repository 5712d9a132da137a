"""The subsidy service's composition root: `create_app` builds the service from its settings (uvicorn --factory
tcr_subsidy.bootstrap:create_app, or `tcr-subsidy serve`)."""

from tcr_subsidy.adapters.http.app import create_app

__all__ = ["create_app"]
