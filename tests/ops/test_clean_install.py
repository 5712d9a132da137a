"""Clean installs in empty virtualenvs (pip's cache keeps them quick): `pip install .` declares every runtime
dependency (a registry started from that venv's console script becomes ready on PostgreSQL), and
`pip install ./shared` alone is the partner kit: the language, the feed client and the partner client import
without any web framework or database library."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from tests.support.processes import ROOT, free_port

pytestmark = pytest.mark.slow

INSTALL_TIMEOUT = 900


def new_venv(path: Path) -> Path:
    """An empty virtualenv (no access to this one's packages); returns its python."""
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=120)
    return path / "bin" / "python"


def pip_install(python: Path, target: Path) -> None:
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(target)],
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
        cwd=python.parent,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without anything that would lead Python back to this checkout or its venv."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    return {**env, **extra}


def test_pip_install_dot_serves_the_registry_on_postgresql(tmp_path, make_pg_database) -> None:
    python = new_venv(tmp_path / "venv")
    pip_install(python, ROOT)
    port, log_path = free_port(), tmp_path / "registry.log"
    env = clean_env(
        TCR_REGISTRY_DATABASE_URL=make_pg_database("tcr_clean"),
        TCR_ADMIN_KEY="clean-install-admin",
        TCR_DEMO="0",
        TCR_DATA_DIR=str(tmp_path / "var"),
    )
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [str(python.parent / "tcr-registry"), "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=tmp_path,  # not the checkout: only what was installed can be imported
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, log_path.read_text(errors="replace")[-4000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log_path.read_text(errors="replace")[-4000:]
            time.sleep(0.2)
        origin = subprocess.run(
            [str(python), "-c", "import tcr_registry; print(tcr_registry.__file__)"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env,
        )
        assert origin.stdout.startswith(str(tmp_path / "venv")), origin.stdout + origin.stderr
    finally:
        server.terminate()
        server.wait(timeout=30)


KIT_CHECK = textwrap.dedent(
    """
    import importlib, pkgutil, sys
    import tcr_shared.language as language
    import tcr_shared.feeds.client
    import tcr_shared.partners.client
    modules = [m.name for m in pkgutil.walk_packages(language.__path__, "tcr_shared.language.")]
    for name in modules:
        importlib.import_module(name)
    assert len(modules) >= 5, modules
    assert tcr_shared.partners.client.__file__.startswith(sys.prefix), tcr_shared.partners.client.__file__
    heavy = [m for m in ("fastapi", "starlette", "sqlalchemy", "alembic", "eventsourcing", "asyncpg", "nats")
             if m in sys.modules]
    assert not heavy, heavy
    print("ok", len(modules))
    """
)


def test_pip_install_shared_alone_is_the_partner_kit(tmp_path) -> None:
    python = new_venv(tmp_path / "kit")
    pip_install(python, ROOT / "shared")
    for absent in ("fastapi", "sqlalchemy"):  # not even installed: the kit does not depend on them
        found = subprocess.run([str(python), "-c", f"import {absent}"], capture_output=True, cwd=tmp_path)
        assert found.returncode != 0, f"{absent} was installed by pip install ./shared"
    ran = subprocess.run(
        [str(python), "-c", KIT_CHECK], capture_output=True, text=True, cwd=tmp_path, env=clean_env(), timeout=120
    )
    assert ran.returncode == 0 and ran.stdout.startswith("ok"), ran.stdout + ran.stderr
