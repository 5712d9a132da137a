"""Fixtures for the partner-delivery tests: a small publisher process (feed + webhooks), partner receivers,
NATS, and helpers that wait for things to happen instead of sleeping."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.support.processes import ServiceProcess, free_port, start_service

ADMIN_KEY = "test-admin-key-partners"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}

# Retry timings shrunk so that backoff, pause and resume run in seconds.
FAST_WEBHOOKS = {
    "TCR_WEBHOOK_RETRY_INITIAL": "0.1",
    "TCR_WEBHOOK_RETRY_MAX": "0.5",
    "TCR_WEBHOOK_RETRY_WINDOW": "3600",
    "TCR_WEBHOOK_TIMEOUT": "1.0",
    "TCR_WEBHOOK_POLL_INTERVAL": "0.2",
}


def key(name: str, role: str = "partner") -> dict[str, str]:
    return {"Authorization": f"Bearer {role}-{name}"}


@pytest.fixture
def start_publisher(tmp_path, artifacts_dir):
    """Start the test publisher (feed + webhook router + delivery worker) as a real uvicorn process."""
    started: list[ServiceProcess] = []

    def start(
        source: str = "registry", *, again: ServiceProcess | None = None, database_url: str | None = None, **env: str
    ) -> ServiceProcess:
        """`again=<a stopped publisher>` restarts it on the same port and database; `database_url` puts the log
        and the webhook tables in that database (PostgreSQL) instead of a SQLite file."""
        db = again.db if again else tmp_path / f"{source}-{len(started)}.db"
        url = again.database_url if again else database_url
        process = start_service(
            f"publisher-{source}",
            "tests.partners.publisher_app:create_app",
            {
                "TCR_TEST_PUBLISHER_DB": str(db),
                "TCR_TEST_PUBLISHER_DATABASE_URL": url or "",
                "TCR_TEST_PUBLISHER_SOURCE": source,
                "TCR_ADMIN_KEY": ADMIN_KEY,
                **FAST_WEBHOOKS,
                **env,
            },
            artifacts_dir / "partners",
            port=again.port if again else None,
        )
        process.db, process.database_url = db, url
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()  # SIGKILL: a graceful stop would wait for open long polls to time out


class Receiver:
    """A partner's receiver process; can be stopped and started again on the same port."""

    def __init__(self, secret: str, log_dir: Path, port: int | None = None, **env: str) -> None:
        self.secret = secret
        self.port = port or free_port()
        self.log_file = log_dir / f"received-{self.port}.jsonl"
        self.log_dir = log_dir
        self.env = env
        self.process: ServiceProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self, **env: str) -> Receiver:
        self.env.update(env)
        self.process = start_service(
            "receiver",
            "tests.partners.receiver_app:create_app",
            {"RECEIVER_SECRET": self.secret, "RECEIVER_LOG": str(self.log_file), **self.env},
            self.log_dir,
            port=self.port,
        )
        return self

    def stop(self) -> None:
        if self.process:
            self.process.kill(signal.SIGKILL)
            self.process = None

    def received(self) -> list[dict]:
        if not self.log_file.exists():
            return []
        return [json.loads(line) for line in self.log_file.read_text().splitlines() if line.strip()]

    def unique(self) -> list[dict]:
        seen, out = set(), []
        for entry in self.received():
            if entry["webhook_id"] not in seen:
                seen.add(entry["webhook_id"])
                out.append(entry)
        return out


@pytest.fixture
def make_receiver(tmp_path):
    receivers: list[Receiver] = []

    def make(secret: str, port: int | None = None, **env: str) -> Receiver:
        receiver = Receiver(secret, tmp_path, port, **env)
        receivers.append(receiver)
        return receiver

    yield make
    for receiver in receivers:
        receiver.stop()


async def wait_until(condition: Callable[[], object], timeout: float = 20.0, interval: float = 0.05, what: str = ""):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        await asyncio.sleep(interval)


async def append(client: httpx.AsyncClient, publisher: ServiceProcess, items: list[dict]) -> list[int]:
    response = await client.post(f"{publisher.url}/test/events", json=items, headers=ADMIN)
    assert response.status_code == 201, response.text
    return response.json()["positions"]


async def feed_events(client: httpx.AsyncClient, publisher: ServiceProcess) -> list[dict]:
    events, after = [], 0
    while True:
        page = (
            await client.get(f"{publisher.url}/v1/events", params={"after": after, "limit": 1000}, headers=ADMIN)
        ).json()
        events += page["events"]
        if not page["events"]:
            return events
        after = page["next_after"]


@pytest.fixture
async def http():
    async with httpx.AsyncClient(timeout=30) as client:
        yield client
