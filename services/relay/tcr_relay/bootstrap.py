"""The relay's composition root: settings from the environment, the JetStream relay, stop on SIGTERM/Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from tcr_relay.adapters.jetstream import run
from tcr_relay.settings import RelaySettings
from tcr_shared.platform.observability import configure_logging


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
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per long poll is noise
    asyncio.run(_serve(settings or RelaySettings()))
