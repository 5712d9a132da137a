"""Real uvicorn processes for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ServiceProcess:
    name: str
    port: int
    process: subprocess.Popen
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def start_service(
    name: str,
    app: str,
    env: dict[str, str],
    log_dir: Path,
    port: int | None = None,
    timeout: float = 60.0,
    serve: tuple[str, str] | None = None,
) -> ServiceProcess:
    """Start `uvicorn <app> --factory` and wait for /healthz. `app` is e.g. tcr_registry.bootstrap:create_app.
    With `serve` = (cli module, port variable), e.g. ("tcr_registry.adapters.cli", "TCR_REGISTRY_PORT"), the
    service runs as production runs it instead: `tcr-<service> serve`, with the process settings (GIL switch
    interval, collector thresholds) that command sets; `app` then only names it in errors."""
    port = port or free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}-{port}.log"
    full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
    if serve is not None:
        module, port_variable = serve
        command = [sys.executable, "-m", module, "serve"]
        full_env.update({"TCR_HOST": "127.0.0.1", port_variable: str(port)})
    else:
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            app,
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--timeout-graceful-shutdown",
            "3",
        ]
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT)
    service = ServiceProcess(name, port, process, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{service.log()[-4000:]}")
        try:
            if httpx.get(f"{service.url}/readyz", timeout=1).status_code == 200:
                return service
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    service.kill()
    raise RuntimeError(f"{name} did not become ready in {timeout}s:\n{service.log()[-4000:]}")
