"""One writer thread that runs commands in order and commits whatever is waiting in one transaction.

Why: the event store takes a table lock per transaction so that no feed reader can ever pass a position
that is not yet committed (no event skipped). One lock per request caps throughput near the fsync rate;
one lock per batch keeps the guarantee and multiplies throughput (group commit). A command that fails
fails alone; a batch that conflicts with another process is re-run command by command.
"""
from __future__ import annotations

import asyncio
import copy
import logging
import queue
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError

from tcr_registry.application.registry import Registry

log = logging.getLogger("tcr.registry.writer")
T = TypeVar("T")


class Conflict(Exception):
    """Another writer changed the aggregate first; the caller may retry."""


class UnitOfWork:
    """The aggregates one command reads and changes. It works on copies, so a command that raises
    leaves nothing behind."""

    def __init__(self, load: Callable[[UUID], Aggregate | None]) -> None:
        self._load = load
        self.touched: dict[UUID, Aggregate] = {}

    def get(self, aggregate_id: UUID) -> Aggregate | None:
        if aggregate_id not in self.touched:
            found = self._load(aggregate_id)
            if found is None:
                return None
            self.touched[aggregate_id] = found
        return self.touched[aggregate_id]

    def add(self, aggregate: Aggregate) -> None:
        self.touched[aggregate.id] = aggregate


@dataclass
class _Job(Generic[T]):
    command: Callable[[UnitOfWork], T]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    result: Any = None
    events: list = field(default_factory=list)
    touched: dict = field(default_factory=dict)

    def settle(self, result: Any = None, error: BaseException | None = None) -> None:
        def _set() -> None:
            if self.future.done():
                return
            if error is not None:
                self.future.set_exception(error)
            else:
                self.future.set_result(result)

        self.loop.call_soon_threadsafe(_set)


class Committed(Generic[T]):
    def __init__(self, value: T, position: int | None) -> None:
        self.value = value
        self.position = position


class Writer:
    def __init__(self, app: Registry, on_commit: Callable[[int, int], None] = lambda _position, _count: None,
                 max_batch: int = 512, cache_size: int = 20_000) -> None:
        self._app = app
        self._on_commit = on_commit
        self._max_batch = max_batch
        self._cache: OrderedDict[UUID, Aggregate] = OrderedDict()
        self._cache_size = cache_size
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="registry-writer", daemon=True)
        self.batches = 0
        self.commands = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    async def execute(self, command: Callable[[UnitOfWork], T]) -> Committed[T]:
        loop = asyncio.get_running_loop()
        job = _Job(command, loop, loop.create_future())
        self._queue.put(job)
        return await job.future

    # --- the writer thread ---
    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            batch = [job]
            while len(batch) < self._max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)
                    break
                batch.append(more)
            try:
                self._commit(batch)
            except Exception as exc:  # the store failed: every waiting request learns it
                log.exception("writer batch failed")
                for item in batch:
                    item.settle(error=exc)

    def _commit(self, batch: list[_Job]) -> None:
        staged: dict[UUID, Aggregate] = {}
        accepted = [job for job in batch if self._run_command(job, staged)]
        if not accepted:
            return
        events = [event for job in accepted for event in job.events]
        try:
            recordings = self._app.save(*events) if events else []
        except IntegrityError:
            for job in accepted:
                self._forget(job.touched)
            self._commit_one_by_one(accepted)
            return
        self._remember(staged)
        self._settle(accepted, recordings)

    def _commit_one_by_one(self, jobs: list[_Job]) -> None:
        for job in jobs:
            staged: dict[UUID, Aggregate] = {}
            job.events, job.touched = [], {}
            if not self._run_command(job, staged):
                continue
            try:
                recordings = self._app.save(*job.events) if job.events else []
            except IntegrityError:
                self._forget(job.touched)
                job.settle(error=Conflict("the contract was changed by another request at the same moment"))
                continue
            self._remember(staged)
            self._settle([job], recordings)

    def _run_command(self, job: _Job, staged: dict[UUID, Aggregate]) -> bool:
        uow = UnitOfWork(lambda aggregate_id: self._copy_of(aggregate_id, staged))
        try:
            job.result = job.command(uow)
        except Exception as exc:
            job.settle(error=exc)
            return False
        for aggregate in uow.touched.values():
            job.events.extend(aggregate.collect_events())
        job.touched = uow.touched
        staged.update(uow.touched)
        return True

    def _settle(self, jobs: list[_Job], recordings: list) -> None:
        self.batches += 1
        self.commands += len(jobs)
        index = 0
        last = None
        appended = sum(len(job.events) for job in jobs)
        for job in jobs:
            position = None
            for _ in job.events:
                position = recordings[index].notification.id
                index += 1
            last = position or last
            job.settle(Committed(job.result, position))
        if last is not None:
            self._on_commit(last, appended)

    def _copy_of(self, aggregate_id: UUID, staged: dict[UUID, Aggregate]) -> Aggregate | None:
        if aggregate_id in staged:
            return copy.deepcopy(staged[aggregate_id])
        cached = self._cache.get(aggregate_id)
        if cached is not None:
            self._cache.move_to_end(aggregate_id)
            return copy.deepcopy(cached)
        try:
            return self._app.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None

    def _remember(self, staged: dict[UUID, Aggregate]) -> None:
        for aggregate_id, aggregate in staged.items():
            self._cache[aggregate_id] = aggregate
            self._cache.move_to_end(aggregate_id)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def _forget(self, touched: dict[UUID, Aggregate]) -> None:
        for aggregate_id in touched:
            self._cache.pop(aggregate_id, None)


class DiscardingWriter:
    """Runs commands exactly as the real writer does but stores nothing: the benchmark's baseline."""

    async def execute(self, command: Callable[[UnitOfWork], T]) -> Committed[T]:
        uow = UnitOfWork(lambda _aggregate_id: None)
        result = command(uow)
        for aggregate in uow.touched.values():
            aggregate.collect_events()
        return Committed(result, None)
