"""Benchmark: POST /v1/contracts at 32 concurrent clients, (a) on PostgreSQL, (b) with persistence off.

Prints requests/s, p50/p99 latency and the ratio a/b. Uses wrk (Debian package `wrk`) as the load generator
in its own process; the registry runs as production runs it, `tcr-registry serve` (uvicorn, with the process's
GIL switch interval and collector thresholds). Run: make bench (or python bench/registry.py).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from results import Run, figure  # noqa: E402

from tests.support import postgres  # noqa: E402
from tests.support.processes import start_service  # noqa: E402
from tests.support.registry import ADMIN_KEY, REGISTRY_APP, contract_body  # noqa: E402

CLIENTS = int(os.environ.get("BENCH_CLIENTS", 32))
SECONDS = int(os.environ.get("BENCH_SECONDS", 15))


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("installing wrk (Debian package) ...", flush=True)
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", "wrk"], check=False, capture_output=True)
    if not shutil.which("wrk"):
        subprocess.run(sudo + ["apt-get", "update", "-qq"], check=True, capture_output=True)
        subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", "wrk"], check=True, capture_output=True)
    return shutil.which("wrk")


def setup_point(url: str, number: str) -> str:
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    point = httpx.post(
        f"{url}/v1/points", json={"number": number, "name": "bench", "jurisdiction": "6400"}, headers=headers
    ).json()
    return httpx.post(f"{url}/v1/api-keys", json={"role": "point", "point_id": point["id"]}, headers=headers).json()[
        "secret"
    ]


def run_wrk(wrk: str, url: str, key: str, seconds: int, workdir: Path) -> dict:
    body = json.dumps(contract_body(amount="900000.00", technology_amount="800000.00"), ensure_ascii=False)
    script = workdir / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = [[{body}]]\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {key}"\n',
        encoding="utf-8",
    )
    out = subprocess.run(
        [wrk, "-t2", f"-c{CLIENTS}", f"-d{seconds}s", "--latency", "-s", str(script), f"{url}/v1/contracts"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return parse_wrk(out)


def parse_wrk(out: str) -> dict:
    def latency(pct: str) -> float:
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "non_2xx": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else "none",
    }


def measure(label: str, env: dict, wrk: str, workdir: Path, number: str) -> dict:
    # As production runs it: `tcr-registry serve` (its GIL switch interval and collector thresholds), not bare uvicorn.
    service = start_service(
        f"bench-{label}", REGISTRY_APP, env, workdir, serve=("tcr_registry.adapters.cli", "TCR_REGISTRY_PORT")
    )
    try:
        key = setup_point(service.url, number)
        print(f"  {label}: warming up ...", flush=True)
        run_wrk(wrk, service.url, key, 3, workdir)
        print(f"  {label}: measuring {SECONDS}s at {CLIENTS} clients ...", flush=True)
        result = run_wrk(wrk, service.url, key, SECONDS, workdir)
        head = httpx.get(
            f"{service.url}/v1/events?after=0&limit=1", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        ).json()["head"]
        result["events_in_log"] = head
        return result
    finally:
        service.stop()


def main() -> None:
    wrk = ensure_wrk()
    run = Run("registry")
    problem = postgres.server_problem()
    if problem:
        sys.exit(problem)
    workdir = Path(tempfile.mkdtemp(prefix="tcr-bench-"))
    url = postgres.create_database("tcr_bench")
    try:
        base = {
            "TCR_ADMIN_KEY": ADMIN_KEY,
            "TCR_DATA_DIR": str(workdir),
            "TCR_ACCESS_LOG": "0",
            "TCR_REGISTRY_DATABASE_URL": url,
        }
        print(
            f"registry: POST /v1/contracts, {CLIENTS} concurrent clients (wrk), tcr-registry serve (uvicorn, 1 worker), "
            f"PostgreSQL at 127.0.0.1:5432, {os.cpu_count()} cores"
        )
        stored = measure("postgresql", base, wrk, workdir, "01")
        baseline = measure("no-persistence", {**base, "TCR_PERSISTENCE": "0"}, wrk, workdir, "02")
    finally:
        postgres.drop_database(url)
    print()
    print(f"{'store':<16}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'non-2xx':>10}")
    for label, r in (("(a) postgresql", stored), ("(b) no store", baseline)):
        print(f"{label:<16}{r['rps']:>10.0f}{r['p50_ms']:>10.2f}{r['p99_ms']:>10.2f}{r['non_2xx']:>10}")
    print(f"events in the PostgreSQL log after the run: {stored['events_in_log']}")
    name = f"POST /v1/contracts, {CLIENTS} clients, PostgreSQL"
    run.add(
        figure(
            name,
            stored["rps"],
            "req/s",
            baseline=baseline["rps"],
            baseline_name="persistence off",
            min_ratio=0.8,
            non_2xx=stored["non_2xx"],
        )
    )
    run.add(
        figure(
            f"{name}: p99",
            stored["p99_ms"],
            "ms",
            at_most=30,
            baseline=baseline["p99_ms"],
            baseline_name="persistence off",
        )
    )
    run.add(figure(f"POST /v1/contracts, {CLIENTS} clients, persistence off", baseline["rps"], "req/s"))
    run.write()


if __name__ == "__main__":
    main()
