"""Deliveries over HTTPS connect to the checked address yet verify the certificate of the URL's host name
(TLS SNI), so pinning the address against DNS rebinding does not weaken TLS."""

from __future__ import annotations

import asyncio
import ssl
import subprocess

import pytest
import uvicorn
from sqlalchemy import MetaData

from tcr_shared.language.events.envelope import FeedEvent, FeedPage
from tcr_shared.partners.webhooks import DeliveryWorker, WebhookSettings, webhook_tables
from tcr_shared.partners.webhooks.router import new_webhook_secret
from tcr_shared.partners.webhooks.worker import utcnow
from tcr_shared.platform.database import Database
from tests.partners.conftest import wait_until
from tests.partners.events import registry_event
from tests.support.processes import free_port


class ListLog:
    def __init__(self, events: list[FeedEvent]) -> None:
        self.events = events

    async def read(self, after: int, limit: int) -> FeedPage:
        page = [e for e in self.events if e.position > after][:limit]
        return FeedPage(events=page, next_after=page[-1].position if page else after, head=len(self.events))

    async def head(self) -> int:
        return len(self.events)


def certificate(tmp_path, name: str, *also: str):
    key, cert = tmp_path / f"{name}.key", tmp_path / f"{name}.crt"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            f"/CN={name}",
            "-addext",
            "subjectAltName=" + ",".join(f"DNS:{n}" for n in (name, *also)),
        ],
        check=True,
        capture_output=True,
    )
    return key, cert


@pytest.mark.parametrize("cert_name, delivered", [("localhost", True), ("partner.example", False)])
async def test_https_delivery_verifies_the_host_name(tmp_path, monkeypatch, cert_name, delivered):
    key, cert = certificate(tmp_path, cert_name)
    secret = new_webhook_secret()
    log_file = tmp_path / "received.jsonl"
    monkeypatch.setenv("RECEIVER_SECRET", secret)
    monkeypatch.setenv("RECEIVER_LOG", str(log_file))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            "tests.partners.receiver_app:create_app",
            factory=True,
            host="127.0.0.1",
            port=port,
            ssl_keyfile=str(key),
            ssl_certfile=str(cert),
            log_level="warning",
        )
    )
    serving = asyncio.create_task(server.serve())

    database = Database(f"sqlite:///{tmp_path / 'hooks.db'}")
    engine = database.async_engine()
    tables = webhook_tables(MetaData())
    async with engine.begin() as conn:
        await conn.run_sync(tables.subscriptions.metadata.create_all)
        now = utcnow()
        await conn.execute(
            tables.subscriptions.insert().values(
                id="sub_tls",
                owner="acme",
                url=f"https://localhost:{port}/hook",
                event_types=["*"],
                regions=[],
                secret=secret,
                status="active",
                position=0,
                generation=0,
                failed_attempts=0,
                created_at=now,
                updated_at=now,
            )
        )
    item = registry_event()
    events = [
        FeedEvent(
            id="evt-1",
            source="/tcr/registry",
            type=item["type"],
            time="2025-03-02T08:00:00+00:00",
            subject=item["subject"],
            position=1,
            data=item["data"],
        )
    ]
    trust = ssl.create_default_context(cafile=str(cert))
    worker = DeliveryWorker(
        engine,
        tables,
        ListLog(events),
        settings=WebhookSettings(retry_initial=0.2),
        tls=trust,
    )
    worker.start()
    try:
        await wait_until(lambda: server.started, what="the TLS receiver")
        if delivered:
            await wait_until(lambda: log_file.exists() and log_file.read_text().strip(), what="the delivery")
            assert '"evt-1"' in log_file.read_text()
        else:

            async def failure():
                async with engine.connect() as conn:
                    return (await conn.execute(tables.deliveries.select())).mappings().first()

            row = await wait_until(failure, what="a failed attempt")
            assert row["outcome"] == "failed" and "certificate" in row["error"].lower(), row["error"]
            assert not log_file.exists()
    finally:
        await worker.stop()
        server.should_exit = True
        await serving
        await engine.dispose()
