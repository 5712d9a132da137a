"""Start the whole system on this machine: registry, subsidy and reporting (and the NATS relay when
TCR_NATS_URL is set), on SQLite files in TCR_DATA_DIR, with demo data unless TCR_DEMO=0.

Ctrl-C or SIGTERM stops every process this script started."""

from __future__ import annotations

import importlib.util
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the venv whose console scripts run the services
SERVICES = [
    ("registry", "tcr_registry.bootstrap:create_app", int(os.environ.get("TCR_REGISTRY_PORT", 8001))),
    ("subsidy", "tcr_subsidy.bootstrap:create_app", int(os.environ.get("TCR_SUBSIDY_PORT", 8002))),
    ("reporting", "tcr_reporting.bootstrap:create_app", int(os.environ.get("TCR_REPORTING_PORT", 8003))),
]


def _available(app: str) -> bool:
    module = app.split(":")[0]
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _wait_ready(name: str, url: str, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{name} exited with code {process.returncode}; see its log above")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{name} did not become ready within {timeout:.0f}s")


def main() -> int:
    env = dict(os.environ)
    env.setdefault("TCR_DEMO", "1")
    env.setdefault("TCR_DATA_DIR", str(ROOT / "var"))
    generated_admin = "TCR_ADMIN_KEY" not in env
    env.setdefault("TCR_ADMIN_KEY", f"tcr_admin_{secrets.token_urlsafe(18)}")
    ports = {name: port for name, _, port in SERVICES}
    env.setdefault("TCR_REGISTRY_URL", f"http://127.0.0.1:{ports['registry']}")
    env.setdefault("TCR_SUBSIDY_URL", f"http://127.0.0.1:{ports['subsidy']}")
    Path(env["TCR_DATA_DIR"]).mkdir(parents=True, exist_ok=True)

    children: list[tuple[str, subprocess.Popen]] = []

    def stop_all(*_args) -> None:
        for _name, child in reversed(children):
            if child.poll() is None:
                child.terminate()
        for _name, child in reversed(children):
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()

    def on_signal(signum, _frame) -> None:
        print(f"\nstopping ({signal.Signals(signum).name}) ...", flush=True)
        stop_all()
        sys.exit(0)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    try:
        for name, app, port in SERVICES:
            if not _available(app):
                print(f"  ({name}: not built yet, skipped)")
                continue
            # the console script, as in production (Dockerfile, compose, k8s): `tcr-<service> serve`
            command = [str(BIN / f"tcr-{name}"), "serve", "--host", "127.0.0.1", "--port", str(port)]
            child = subprocess.Popen(command, cwd=ROOT, env=env)
            children.append((name, child))
            print(f"starting {name} on :{port} ...", flush=True)
            _wait_ready(name, f"http://127.0.0.1:{port}", child)
        if env.get("TCR_NATS_URL") and _available("tcr_relay.__main__:x"):
            children.append(("relay", subprocess.Popen([str(BIN / "tcr-relay"), "serve"], cwd=ROOT, env=env)))
        _banner(env, ports, generated_admin)
        while True:
            for name, child in children:
                if child.poll() is not None:
                    print(f"{name} stopped unexpectedly (exit {child.returncode}); stopping the rest.", flush=True)
                    stop_all()
                    return 1
            time.sleep(0.5)
    except SystemExit:
        stop_all()
        raise


def _banner(env: dict, ports: dict, generated_admin: bool) -> None:
    demo = env.get("TCR_DEMO") not in ("0", "false", "no")
    lines = [
        "",
        "tcr is running  技术合同登记系统已启动",
        f"  registry   http://127.0.0.1:{ports['registry']}/docs   (feed: /v1/events, /v1/events/stream)",
        f"  subsidy    http://127.0.0.1:{ports['subsidy']}/docs",
        f"  reporting  http://127.0.0.1:{ports['reporting']}/        (dashboard 仪表板)",
        f"  data       {env['TCR_DATA_DIR']} (SQLite)",
        f"  admin key  {env['TCR_ADMIN_KEY']}"
        + ("   (generated; set TCR_ADMIN_KEY to choose one)" if generated_admin else ""),
    ]
    if demo:
        lines += [
            "  demo keys  analyst: tcr_demo_analyst   partner: tcr_demo_partner",
            "             points:  tcr_demo_point_6400 (regional market), tcr_demo_point_6401 (Yinchuan) ... _6405",
            "",
            f"  try: curl -H 'Authorization: Bearer tcr_demo_analyst' 'http://127.0.0.1:{ports['registry']}/v1/contracts?limit=2'",
        ]
    lines.append("  Ctrl-C stops everything.")
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    sys.exit(main())
