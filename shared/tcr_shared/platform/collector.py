"""The one home of how tcr handles Python's cyclic garbage collector around bursts of allocation that make no
cycles (decisions, replays, imports, requests): reference counting frees those objects; the cycle collector would
only rescan them, and the long-lived heap, for cycles that are not there (10-50% of the CPU, measured in
docs/performance.md). Two tools: pause it for one bounded burst, or raise its thresholds while longer work runs."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

FEWER_COLLECTIONS = (50_000, 20, 100)
"""Garbage-collector thresholds for work that allocates many short-lived objects forming no cycles (requests,
imports): the defaults (700, 10, 10) ran full collections over the whole heap often enough to cost 10-30% of the
CPU and most of the p99 (docs/performance.md). Collections still run, about 70 times less often."""


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic collector off for one burst (a batch of events decided, a replay, a tally); whatever cycles were
    made are collected as usual afterwards. Other tasks that run during the burst's awaits are spared the scans
    too. Nesting is harmless: only the outermost pause turns the collector back on."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


class _RaisedThresholds:
    """FEWER_COLLECTIONS while any holder runs (imports may overlap, in threads or tasks); the thresholds found
    before the first are restored when the last ends, failed or not."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = 0
        self._saved: tuple[int, int, int] | None = None

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._lock:
            if self._running == 0:
                self._saved = gc.get_threshold()
                gc.set_threshold(*FEWER_COLLECTIONS)
            self._running += 1
        try:
            yield
        finally:
            with self._lock:
                self._running -= 1
                if self._running == 0 and self._saved is not None:
                    gc.set_threshold(*self._saved)


fewer_collections = _RaisedThresholds().held
"""`with fewer_collections():` runs its block (and whatever overlaps it) under FEWER_COLLECTIONS."""
