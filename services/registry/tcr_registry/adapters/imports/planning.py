"""Worker processes that plan a large import's rows (tcr_registry.application.imports.plan_rows: the API's schema
and the construction of the domain terms) while the importing process runs the writer.

Why processes: threads of one interpreter share one GIL, so an import in one process is bound to one core whatever
the machine, and planning is about a third of its CPU. A worker answers plain data (the plans), and the rows still
reach the writer in file order (ImportRun). Only where cores are to spare (planner_count): on two, the extra process
competes with the writer and PostgreSQL and the import got slower."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from typing import Any

PLAN_IN_WORKERS_FROM = 5_000
"""Rows from which a file is planned in worker processes: below it, starting them costs more than it saves."""

# What a worker needs, imported once in the fork server, so that each worker starts in milliseconds. The fork
# server is a fresh interpreter (not a fork of the service, whose threads and connections a fork would copy).
_PRELOAD = ["tcr_registry.adapters.imports.terms"]


def planner_count() -> int:
    """Planning processes for this machine: one per core beyond the first two, up to four. With two cores or fewer,
    none: the importing process (the writer, about 90 microseconds of CPU a row, is the limit), PostgreSQL and a
    planning process contend for the same cores, and on the shared 2-core development machine (load average 4)
    100,000 rows took 34 s with a planning process against 22 s without (docs/performance.md)."""
    cores = os.cpu_count() or 1
    return 0 if cores <= 2 else min(cores - 2, 4)


class _WarmingPool(Executor):
    """A process pool that runs work in the caller's process until its workers have started (0.5-1 s: the first
    chunks of a file need not wait for them)."""

    def __init__(self, pool: ProcessPoolExecutor) -> None:
        self._pool = pool
        self.started = pool.submit(os.getpid)  # done once a worker answers (its process id)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        if self.started.done():
            return self._pool.submit(fn, *args, **kwargs)
        done: Future = Future()
        try:
            done.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            done.set_exception(exc)
        return done

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)


@contextlib.asynccontextmanager
async def row_planners(rows: int, workers: int | None = None) -> AsyncIterator[Executor | None]:
    """A pool of `workers` planning processes (default planner_count()) for a file of `rows` data rows; None,
    i.e. plan in this process, for a small file or with no workers. Shut down when the import ends, failed or not."""
    workers = planner_count() if workers is None else workers
    if rows < PLAN_IN_WORKERS_FROM or workers < 1:
        yield None
        return
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_PRELOAD)
    pool = _WarmingPool(ProcessPoolExecutor(max_workers=workers, mp_context=context))
    try:
        yield pool
    finally:
        await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)
