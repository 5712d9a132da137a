"""The registry service's composition root: `RegistryRuntime` builds everything a request needs from the settings,
and `create_app` wraps it in the FastAPI app (uvicorn --factory tcr_registry.bootstrap:create_app, or
`tcr-registry serve`, which also sets the GIL switch interval the writer thread needs)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os

from fastapi import FastAPI

from tcr_registry.adapters.feeds import contract_index
from tcr_registry.adapters.feeds.event_log import LazyEventLog, RegistryEventLog
from tcr_registry.adapters.feeds.index_sink import SharedIndexSink
from tcr_registry.adapters.http.app import build_app
from tcr_registry.adapters.http.idempotency import IdempotencyRecords
from tcr_registry.adapters.imports.jobs import SqlImportJobs
from tcr_registry.adapters.imports.service import Imports
from tcr_registry.adapters.persistence import migrate
from tcr_registry.adapters.persistence.contract_listing import SqlContractIndex
from tcr_registry.adapters.persistence.event_store import EventStoreContracts, Registry
from tcr_registry.adapters.persistence.key_status import KeyStatus
from tcr_registry.adapters.persistence.models import audit_log, feed_tracking, webhooks
from tcr_registry.adapters.persistence.personal_data import PersonalKeys, named_in_clear
from tcr_registry.adapters.persistence.points_and_keys import SqlPointsAndKeys
from tcr_registry.adapters.persistence.writer import DiscardingWriter, Writer
from tcr_registry.settings import RegistrySettings
from tcr_shared.feeds.follower import Follower, follower_metrics
from tcr_shared.feeds.server import NewEventsSignal
from tcr_shared.feeds.sources import LocalFeed
from tcr_shared.partners.webhooks import DeliveryWorker
from tcr_shared.platform.audit import AuditLog
from tcr_shared.platform.auth import Authenticator
from tcr_shared.platform.database import database_ready
from tcr_shared.platform.lease import Lease, stop_task
from tcr_shared.platform.observability import Metrics, all_ready, configure_logging
from tcr_shared.platform.ratelimit import RateLimits, RateLimitSettings
from tcr_shared.platform.sealing import use_master_key

log = logging.getLogger("tcr.registry")
LOOPBACK = "127.0.0.0/8, ::1/128"


def rate_limits() -> RateLimits:
    """TCR_RATE_LIMIT_*; unless TCR_RATE_LIMIT_TRUSTED_NETWORKS is set (even empty), loopback is trusted: subsidy
    and reporting ask /v1/whoami with their clients' keys, and on one host (make run, the tests) they call from
    loopback; their clients' failures must not lock them out (per key they are still counted)."""
    if "TCR_RATE_LIMIT_TRUSTED_NETWORKS" in os.environ:
        return RateLimits()
    return RateLimits(RateLimitSettings(trusted_networks=LOOPBACK))


class RegistryRuntime:
    """Everything a request needs, built at startup."""

    def __init__(self, settings: RegistrySettings) -> None:
        self.settings = settings
        self.database = settings.database
        self.signal = NewEventsSignal()
        self.engine = self.database.async_engine()
        self.points_and_keys = SqlPointsAndKeys(self.engine)
        self.auth = Authenticator(settings.admin_key, self.points_and_keys.resolve_key, limits=rate_limits())
        self.key_status = KeyStatus(self.engine)
        self.require = self.auth.require
        self.idempotency = IdempotencyRecords(self.engine)
        self.audit = AuditLog(self.engine, audit_log)
        # One master key for everything sealed at rest (personal data keys, receipts, webhook secrets).
        self.master_key = settings.master()
        use_master_key(self.master_key)
        self.personal_keys = PersonalKeys.for_database(self.database, self.master_key)
        self.app: Registry | None = None
        self.contracts = EventStoreContracts(lambda: self.app)
        self.contract_index = SqlContractIndex(self.engine)
        self.writer: Writer | DiscardingWriter | None = None
        self.event_log: RegistryEventLog | None = None
        self.feed = LazyEventLog(lambda: self.event_log)  # routes are declared before the log exists
        self.index_follower: Follower | None = None
        self.metrics = Metrics("registry")
        self.events_appended = self.metrics.counter("tcr_registry_events_appended_total", "Events appended to the log")
        self.webhooks = DeliveryWorker(
            self.engine, webhooks, self.feed, signal=self.signal, key_active=self.key_status.is_active
        )
        self.webhook_lease: Lease | None = None  # set at start: /v1/status and the tests read its role
        self._database_ready = database_ready(self.engine)
        self.imports = Imports(SqlImportJobs(self.engine), lambda: self.writer)

    @property
    def ready(self) -> bool:
        return self.app is not None and self.writer is not None

    async def readiness(self) -> bool:
        """/readyz: started, the database answers, and the contract index's follower is not stalled."""
        if not self.ready:
            return False
        checks = [self._database_ready] + ([self.index_follower.ready] if self.index_follower else [])
        return await all_ready(*checks)()

    def leases(self) -> tuple[Lease, Lease]:
        """Work done once per database whatever the number of replicas: the contract index and webhook delivery
        (on SQLite, one process by design, both are always held)."""
        url = self.database.url
        return Lease(url, "registry-contract-index"), Lease(url, "registry-webhooks")

    async def start(self) -> None:
        self.signal.bind(asyncio.get_running_loop())
        await asyncio.to_thread(migrate.upgrade, self.database)
        self.app = await asyncio.to_thread(Registry, self.database.eventsourcing_env(), self.personal_keys)
        await asyncio.to_thread(self.personal_keys.subject, "")  # the pepper, read once before serving
        self.event_log = RegistryEventLog(self.app)
        if self.settings.persistence:
            self.writer = Writer(
                self.app,
                on_commit=self._committed,
                max_batch=self.settings.writer_batch,
                cache_size=self.settings.writer_cache,
            )
            self.writer.start()
        else:
            self.writer = DiscardingWriter()
        sink = SharedIndexSink(self.engine, feed_tracking, "registry-contract-index", contract_index.apply_page)
        self.index_follower = Follower("registry-contract-index", LocalFeed(self.event_log, self.signal), sink)
        follower_metrics(self.metrics, self.index_follower)  # the same gauges as subsidy's and reporting's followers

    async def erase_individual(self, id_number: str, by: str) -> str | None:
        """Crypto-shredding: destroy the person's key ('erased', 'already erased', or None if never held)."""
        subject = await asyncio.to_thread(self.personal_keys.subject, id_number)
        table = self.app.recorder.events_table_name

        def held_in_clear() -> bool:  # events stored before encryption may name a person who has no key
            return named_in_clear(self.personal_keys.engine, table, id_number)

        outcome = await asyncio.to_thread(self.personal_keys.erase, subject, by, held_in_clear)
        if outcome is not None and isinstance(self.writer, Writer):
            self.writer.forget_everything()
        return outcome

    def audit_target(self, name: str, value: str) -> str:
        """What the audit trail keeps of a path parameter: never an identity number, only its subject."""
        return f"subject:{self.personal_keys.subject(value)}" if name == "id_number" else value

    def _committed(self, position: int, appended: int) -> None:
        self.events_appended.inc(appended)
        if self.event_log is not None:
            self.event_log.committed(position)
        self.signal.ring()

    async def stop(self) -> None:
        if isinstance(self.writer, Writer):
            await asyncio.to_thread(self.writer.stop)
        if self.event_log is not None:
            await asyncio.to_thread(self.event_log.close)  # no log read may run while the store closes
        if self.app is not None:
            self.app.close()
        self.personal_keys.close()
        await self.engine.dispose()


def create_app(settings: RegistrySettings | None = None) -> FastAPI:
    settings = settings or RegistrySettings()
    configure_logging()
    if not settings.access_log:
        logging.getLogger("tcr.registry.access").setLevel(logging.WARNING)
    runtime = RegistryRuntime(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        await runtime.start()
        index_lease, webhooks_lease = runtime.leases()
        follower = runtime.index_follower
        index_task = asyncio.create_task(
            index_lease.run_while_leader(follower.run, standby=follower.watch), name="contract-index"
        )
        runtime.webhook_lease = webhooks_lease
        webhooks_task = asyncio.create_task(webhooks_lease.run_while_leader(runtime.webhooks.lead), name="webhooks")
        if settings.demo:
            from tcr_registry.adapters.demo import load_demo

            await load_demo(runtime)
        log.info("registry ready", extra={"service": "registry"})
        try:
            yield
        finally:
            for task in (webhooks_task, index_task):
                await stop_task(task)
            await runtime.imports.stop()
            await runtime.webhooks.stop()
            await runtime.stop()
            log.info("registry stopped", extra={"service": "registry"})

    return build_app(runtime, lifespan)
