"""`python -m tcr_shared.relay`: relay the registry and subsidy feeds to NATS JetStream until SIGTERM/Ctrl-C."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from tcr_shared.observability import configure_logging
from tcr_shared.relay.relay import run


async def _main() -> None:
    task = asyncio.create_task(run())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


def main() -> None:
    configure_logging()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per long poll is noise
    asyncio.run(_main())


if __name__ == "__main__":
    main()
