"""Real processes for the reporting suite: the registry and the reporting service under uvicorn."""

from __future__ import annotations

import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.reporting.registry_api import RegistryApi, wait_for_position
from tests.support import postgres
from tests.support.processes import ROOT, ServiceProcess, free_port, start_service

REGISTRY_APP = "tcr_registry.bootstrap:create_app"
REPORTING_APP = "tcr_reporting.bootstrap:create_app"
SUBSIDY_APP = "tcr_subsidy.bootstrap:create_app"


@dataclass
class Stack:
    admin_key: str
    registry: ServiceProcess
    registry_api: RegistryApi
    reporting_env: dict[str, str]
    log_dir: Path
    reporting: ServiceProcess | None = None
    subsidy: ServiceProcess | None = None
    clients: list[httpx.Client] = field(default_factory=list)

    def start_reporting(self) -> ServiceProcess:
        self.reporting = start_service("reporting", REPORTING_APP, self.reporting_env, self.log_dir)
        return self.reporting

    def client(self, key: str | None = None) -> httpx.Client:
        assert self.reporting is not None
        client = httpx.Client(
            base_url=self.reporting.url, timeout=30, headers={"Authorization": f"Bearer {key or self.admin_key}"}
        )
        self.clients.append(client)
        return client

    def caught_up(self) -> None:
        with httpx.Client(
            base_url=self.reporting.url, timeout=30, headers={"Authorization": f"Bearer {self.admin_key}"}
        ) as client:
            wait_for_position(client, self.registry_api.last_position)

    def rebuild(self) -> subprocess.CompletedProcess:
        return self.cli("rebuild")

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        """`tcr-reporting <args>` against this stack's database and feeds."""
        return subprocess.run(
            [sys.executable, "-m", "tcr_reporting.adapters.cli", *args],
            cwd=ROOT,
            env={**__import__("os").environ, **self.reporting_env},
            capture_output=True,
            text=True,
            timeout=120,
        )

    def close(self) -> None:
        for client in self.clients:
            client.close()
        self.registry_api.close()
        if self.reporting is not None:
            self.reporting.stop()
        if self.subsidy is not None:
            self.subsidy.kill()
        # The registry's graceful shutdown takes ~20 s here; its data is a throwaway temp file.
        self.registry.kill()


def make_stack(tmp: Path, reporting_database_url: str | None, *, with_subsidy: bool = False) -> Stack:
    admin_key = f"admin_{secrets.token_hex(8)}"
    data_dir = tmp / "var"
    log_dir = tmp / "logs"
    common = {"TCR_ADMIN_KEY": admin_key, "TCR_DATA_DIR": str(data_dir), "TCR_DEMO": "0"}
    registry = start_service("registry", REGISTRY_APP, {**common, "TCR_REGISTRY_DATABASE_URL": ""}, log_dir)
    subsidy = None
    if with_subsidy:
        subsidy = start_service(
            "subsidy",
            SUBSIDY_APP,
            {**common, "TCR_REGISTRY_URL": registry.url, "TCR_SUBSIDY_DATABASE_URL": ""},
            log_dir,
        )
    env = {
        **common,
        "TCR_REGISTRY_URL": registry.url,
        # without a subsidy service, reporting must work and say that feed is unreachable
        "TCR_SUBSIDY_URL": subsidy.url if subsidy else f"http://127.0.0.1:{free_port()}",
        "TCR_REPORTING_DATABASE_URL": reporting_database_url or "",
    }
    return Stack(admin_key, registry, RegistryApi(registry.url, admin_key), env, log_dir, subsidy=subsidy)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack_any_backend(request, tmp_path_factory):
    url = None
    if request.param == "postgresql":
        request.getfixturevalue("postgres_server")
        url = postgres.create_database("tcr_reporting_e2e")
    stack = make_stack(tmp_path_factory.mktemp("stack"), url)
    stack.start_reporting()
    yield stack
    stack.close()
    if url:
        postgres.drop_database(url)


@pytest.fixture(scope="module")
def stack_with_subsidy(tmp_path_factory):
    stack = make_stack(tmp_path_factory.mktemp("stack"), None, with_subsidy=True)
    stack.start_reporting()
    yield stack
    stack.close()
