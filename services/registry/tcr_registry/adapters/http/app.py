"""The registry's FastAPI app: `uvicorn tcr_registry.adapters.http.app:create_app --factory`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from uuid import UUID

from fastapi import FastAPI

from tcr_registry.adapters import contract_index
from tcr_registry.adapters.event_log import RegistryEventLog
from tcr_registry.adapters.http.admin import admin_router
from tcr_registry.adapters.http.contracts import contracts_router
from tcr_registry.adapters.http.errors import install_domain_errors
from tcr_registry.adapters.http.idempotency import IdempotencyRecords
from tcr_registry.adapters.http.keys import KeyStore
from tcr_registry.adapters.index_sink import SharedIndexSink
from tcr_registry.adapters.persistence import migrate
from tcr_registry.adapters.persistence.models import feed_tracking, webhooks
from tcr_registry.application.errors import ContractNotFound
from tcr_registry.application.registry import Registry
from tcr_registry.application.writer import DiscardingWriter, Writer
from tcr_registry.domain.contract import Contract
from tcr_registry.settings import RegistrySettings
from tcr_shared.feeds.follower import Follower
from tcr_shared.feeds.server import NewEventsSignal, feed_router
from tcr_shared.feeds.sources import LocalFeed
from tcr_shared.language.events.registry import REGISTRY_EVENT_TYPES
from tcr_shared.partners.asyncapi import asyncapi_router
from tcr_shared.partners.webhooks import DeliveryWorker, subscriptions_router
from tcr_shared.platform.auth import Authenticator
from tcr_shared.platform.observability import NATIVE_TELEMETRY_OFF, Metrics, configure_logging, instrument
from tcr_shared.platform.problems import install_problem_handlers

log = logging.getLogger("tcr.registry")


class RegistryService:
    """Everything a request needs, built at startup."""

    def __init__(self, settings: RegistrySettings) -> None:
        self.settings = settings
        self.database = settings.database
        self.signal = NewEventsSignal()
        self.engine = self.database.async_engine()
        self.keys = KeyStore(self.engine)
        self.auth = Authenticator(settings.admin_key, self.keys)
        self.require = self.auth.require
        self.idempotency = IdempotencyRecords(self.engine)
        self.app: Registry | None = None
        self.writer: Writer | DiscardingWriter | None = None
        self.event_log: RegistryEventLog | None = None
        self.index_follower: Follower | None = None
        self.metrics = Metrics("registry")
        self.events_appended = self.metrics.counter("tcr_registry_events_appended_total", "Events appended to the log")
        self.webhooks = DeliveryWorker(self.engine, webhooks, _LazyLog(self), signal=self.signal)

    async def start(self) -> None:
        # The writer thread returns from each database round trip needing the GIL back; with the default
        # 5 ms switch interval a busy event loop makes it wait that long every time (a convoy).
        sys.setswitchinterval(self.settings.switch_interval)
        self.signal.bind(asyncio.get_running_loop())
        await asyncio.to_thread(migrate.upgrade, self.database)
        self.app = await asyncio.to_thread(Registry, self.database.eventsourcing_env())
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

    def _committed(self, position: int, appended: int) -> None:
        self.events_appended.inc(appended)
        self.signal.ring()

    async def stop(self) -> None:
        if isinstance(self.writer, Writer):
            await asyncio.to_thread(self.writer.stop)
        if self.app is not None:
            self.app.close()
        await self.engine.dispose()

    async def load(self, contract_id: UUID) -> Contract:
        from eventsourcing.application import AggregateNotFoundError

        try:
            contract = await asyncio.to_thread(self.app.repository.get, contract_id)
        except AggregateNotFoundError:
            raise ContractNotFound(str(contract_id)) from None
        if not isinstance(contract, Contract):
            raise ContractNotFound(str(contract_id))
        return contract


def create_app(settings: RegistrySettings | None = None) -> FastAPI:
    settings = settings or RegistrySettings()
    configure_logging()
    if not settings.access_log:
        logging.getLogger("tcr.registry.access").setLevel(logging.WARNING)
    service = RegistryService(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        await service.start()
        service.webhooks.start()
        index_task = asyncio.create_task(service.index_follower.run(), name="contract-index")
        if settings.demo:
            from tcr_registry.adapters.demo import load_demo

            await load_demo(service)
        log.info("registry ready", extra={"service": "registry"})
        try:
            yield
        finally:
            await service.webhooks.stop()
            index_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await index_task
            await service.stop()
            log.info("registry stopped", extra={"service": "registry"})

    app = FastAPI(
        title="tcr registry 技术合同认定登记",
        version="1.0.0",
        lifespan=lifespan,
        telemetry=NATIVE_TELEMETRY_OFF,
        description="Registration and certification of technology contracts; the public event feed.",
    )
    app.state.service = service
    install_problem_handlers(app)
    install_domain_errors(app)

    async def ready() -> bool:
        return service.app is not None and service.writer is not None

    metrics = instrument(app, "registry", ready, metrics=service.metrics)
    reader = service.require("partner", "analyst")
    app.include_router(feed_router(_LazyLog(service), service.signal, reader, heartbeat=settings.sse_heartbeat))
    app.include_router(contracts_router(service))
    app.include_router(admin_router(service))
    app.include_router(
        subscriptions_router(
            engine=service.engine,
            tables=webhooks,
            source=_LazyLog(service),
            event_types=REGISTRY_EVENT_TYPES,
            require=service.require,
            worker=service.webhooks,
        )
    )
    app.include_router(asyncapi_router())
    service.webhooks.register_metrics(metrics.registry)
    return app


class _LazyLog:
    """The event log exists once the app has started; routes are declared before."""

    def __init__(self, service: RegistryService) -> None:
        self._service = service

    async def read(self, after: int, limit: int):
        return await self._service.event_log.read(after, limit)

    async def head(self) -> int:
        return await self._service.event_log.head()
