"""Closing the registry's event log waits for the reads still running in threads and refuses new ones: a reader
cancelled at shutdown leaves its thread running, and closing the SQLite store under it crashed the process."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from tcr_registry.adapters.feeds.event_log import RegistryEventLog


class _SlowRecorder:
    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def max_notification_id(self) -> int:
        self.entered.set()
        self.release.wait(5)
        return 7


class _App:
    def __init__(self) -> None:
        self.recorder = _SlowRecorder()


async def test_close_waits_for_a_running_read_and_refuses_new_ones():
    app = _App()
    log = RegistryEventLog(app)  # type: ignore[arg-type]
    reader = asyncio.create_task(log.head())
    await asyncio.to_thread(app.recorder.entered.wait, 5)
    reader.cancel()  # the awaiting coroutine goes; its thread runs on

    closed_at: list[float] = []
    closing = asyncio.create_task(asyncio.to_thread(lambda: (log.close(), closed_at.append(time.monotonic()))))
    await asyncio.sleep(0.2)
    assert not closing.done()  # still waiting for the read in its thread
    released_at = time.monotonic()
    app.recorder.release.set()
    await closing
    assert closed_at[0] >= released_at

    with pytest.raises(RuntimeError, match="closed"):
        await log.head()
