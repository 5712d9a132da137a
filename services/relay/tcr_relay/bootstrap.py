"""The relay's composition root: settings from the environment, the JetStream publisher, one relay loop per
source (`tcr_relay.application.relay`), stop on SIGTERM/Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from tcr_relay.adapters.jetstream import JetStreamPublisher, connect, ensure_stream
from tcr_relay.application.relay import SourceStatus, relay_source
from tcr_relay.settings import RelaySettings
from tcr_shared.feeds.client import FeedClient
from tcr_shared.platform.observability import configure_logging

log = logging.getLogger("tcr.relay")


async def run(settings: RelaySettings | None = None) -> None:
    """Relay every configured source to JetStream until cancelled."""
    settings = settings or RelaySettings()
    if not settings.nats_url:
        raise SystemExit("TCR_NATS_URL is not set: there is no NATS to relay to")
    sources = settings.source_urls()
    key = settings.key
    nc = await connect(settings.nats_url)
    js = nc.jetstream()
    feeds: list[FeedClient] = []
    try:
        await ensure_stream(js, settings)
        publisher = JetStreamPublisher(js, settings.nats_stream, settings.nats_subject_prefix)
        tasks = []
        for source, url in sources.items():
            feed = FeedClient(url, key)
            feeds.append(feed)
            loop = relay_source(publisher, source, feed, SourceStatus(source))
            tasks.append(asyncio.create_task(loop, name=f"relay-{source}"))
        log.info("relay: publishing %s to stream %s at %s", ", ".join(sources), settings.nats_stream, settings.nats_url)
        await asyncio.gather(*tasks)
    finally:
        for feed in feeds:
            await feed.aclose()
        await nc.drain()


async def _serve(settings: RelaySettings) -> None:
    task = asyncio.create_task(run(settings))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


def serve(settings: RelaySettings | None = None) -> None:
    """Relay the registry and subsidy feeds to NATS JetStream until SIGTERM or Ctrl-C."""
    configure_logging()
    asyncio.run(_serve(settings or RelaySettings()))
