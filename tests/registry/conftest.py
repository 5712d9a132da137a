"""One registry per backend (SQLite and a fresh PostgreSQL database) shared by the tests of a module. Tests
that need exact numbers use their own fresh point, so sharing the database does not couple them."""

from __future__ import annotations

import pytest

from tests.support import postgres
from tests.support.registry import RegistryEnv, registry_in_process


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
async def registry(request, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("registry")
    if request.param == "sqlite":
        url = f"sqlite:///{data_dir / 'registry.db'}"
    else:
        request.getfixturevalue("postgres_server")
        url = postgres.create_database("tcr_registry_test")
    try:
        async with registry_in_process(url, data_dir) as client:
            yield RegistryEnv(client, request.param, url)
    finally:
        if request.param == "postgresql":
            postgres.drop_database(url)
