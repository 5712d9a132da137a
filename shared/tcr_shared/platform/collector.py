"""Pausing Python's cyclic garbage collector around a burst of allocation that makes no cycles."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Deciding a batch of thousands of events allocates hundreds of thousands of small objects (records, awards,
    Decimals, strings) that reference counting frees; each 700 allocations the cyclic collector would scan the
    young objects, and now and then the whole heap, for cycles that are not there (measured, docs/performance.md:
    the decision engine alone ran twice as fast with it paused). Paused only while one batch is applied (other tasks that run during its
    awaits are spared the scans too); whatever cycles were made are collected as usual afterwards. Nesting is
    harmless."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()
