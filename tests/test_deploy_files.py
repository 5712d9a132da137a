"""The deployment files name things that exist: app factories that import, CLIs that are installed, and only
settings the services read. (No Docker engine or cluster runs here, so this is what can be checked.)"""

from __future__ import annotations

import importlib
import re
import shutil
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _commands() -> list[list[str]]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    ours = ("uvicorn", "python", "tcr-registry", "tcr-subsidy", "tcr-reporting", "tcr-relay")
    found = [s["command"] for s in compose["services"].values() if s.get("command", [""])[0] in ours]
    for path in sorted((ROOT / "deploy" / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc:
                continue
            spec = doc.get("spec", {})
            template = spec.get("template", {}).get("spec") or spec.get("jobTemplate", {}).get("spec", {}).get(
                "template", {}
            ).get("spec", {})
            for container in template.get("containers", []):
                if container.get("command"):
                    found.append(container["command"])
    return found


@pytest.mark.parametrize("command", _commands(), ids=lambda c: " ".join(c)[:60])
def test_every_deployed_command_exists(command):
    if command[0] == "uvicorn":
        module, _, factory = command[1].partition(":")
        assert callable(getattr(importlib.import_module(module), factory))
        assert "--factory" in command
    elif command[:2] == ["python", "-m"]:
        assert importlib.util.find_spec(command[2]) is not None, command
    else:
        assert shutil.which(command[0]) or (ROOT / ".venv" / "bin" / command[0]).exists(), command


def test_compose_sets_only_settings_the_services_read():
    compose = (ROOT / "docker-compose.yml").read_text()
    names = set(re.findall(r"\b(TCR_[A-Z_]+):", compose))
    code = "\n".join(p.read_text() for p in (ROOT / "services").rglob("*.py")) + "\n".join(
        p.read_text() for p in (ROOT / "shared").rglob("*.py")
    )
    for name in names:
        field = name.removeprefix("TCR_").lower()
        assert name in code or re.search(rf"\b{field}\s*:", code), f"{name} is set but no service reads it"


def _k8s_documents() -> list[dict]:
    return [
        doc
        for path in sorted((ROOT / "deploy" / "k8s").glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


def test_replicated_services_share_their_rate_limit_counts():
    """Several replicas count failures and quotas together only in a shared storage: the deployments that run
    more than one replica point TCR_RATE_LIMIT_STORAGE at a Redis they also deploy."""
    from urllib.parse import urlsplit

    from tcr_shared.platform.ratelimit import storage_uri

    docs = _k8s_documents()
    config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "tcr-config")
    storage = urlsplit(storage_uri(config["data"]["TCR_RATE_LIMIT_STORAGE"]))
    assert "redis" in storage.scheme  # what the services make of it (an async Redis driver), not memory
    service = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == storage.hostname)
    assert storage.port in [p["port"] for p in service["spec"]["ports"]]
    selected = service["spec"]["selector"]
    redis = next(d for d in docs if d["kind"] == "Deployment" and d["spec"]["selector"]["matchLabels"] == selected)
    assert redis["spec"]["template"]["spec"]["containers"][0]["image"].startswith("redis:")
    replicated = [d for d in docs if d["kind"] == "Deployment" and d["spec"].get("replicas", 1) > 1]
    assert {d["metadata"]["name"] for d in replicated} >= {"tcr-registry", "tcr-subsidy", "tcr-reporting"}
    for deployment in replicated:
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            assert {"configMapRef": {"name": "tcr-config"}} in container.get("envFrom", []), deployment["metadata"]

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name in ("registry", "subsidy", "reporting"):
        url = urlsplit(compose["services"][name]["environment"]["TCR_RATE_LIMIT_STORAGE"])
        assert url.scheme == "redis" and compose["services"][url.hostname]["image"].startswith("redis:")
