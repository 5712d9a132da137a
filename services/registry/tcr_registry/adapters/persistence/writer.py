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
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError

from tcr_registry.adapters.persistence.event_store import Registry
from tcr_registry.adapters.persistence.receipts import Receipt
from tcr_registry.application.errors import Conflict

log = logging.getLogger("tcr.registry.writer")
T = TypeVar("T")


class UnitOfWork:
    """The writer's unit of work (tcr_registry.application.ports.UnitOfWork): the aggregates one command reads
    and changes. It works on copies, so a command that raises leaves nothing behind."""

    def __init__(
        self,
        load: Callable[[UUID], Aggregate | None],
        peek: Callable[[UUID], bool] = lambda _aggregate_id: False,
        careful: bool = True,
    ) -> None:
        self._load = load
        self._peek = peek
        self._careful = careful
        self.touched: dict[UUID, Aggregate] = {}

    def is_new(self, aggregate_id: UUID) -> bool:
        """Whether no aggregate has this id. Optimistically (no database read) unless a batch conflicted:
        the store's unique key on (id, version) refuses a duplicate anyway, and the writer then re-runs
        the batch carefully."""
        if aggregate_id in self.touched or self._peek(aggregate_id):
            return False
        return not self._careful or self.get(aggregate_id) is None

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
    receipt: Receipt | None = None
    audit: Any = None  # the request's audit entry (tcr_shared.platform.audit.AuditEntry), stored with its events
    audited: bool = False
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
    def __init__(self, value: T, position: int | None, audited: bool = False) -> None:
        self.value = value
        self.position = position
        self.audited = audited  # the audit entry given with the command was stored in its transaction


_OK, _FAILED, _RECHECK = object(), object(), object()


class Writer:
    CONFLICT_ATTEMPTS = 30  # another writer on the same hot aggregate (a registration book) may win a few times

    def __init__(
        self,
        app: Registry,
        on_commit: Callable[[int, int], None] = lambda _position, _count: None,
        max_batch: int = 512,
        cache_size: int = 20_000,
    ) -> None:
        self._app = app
        self._on_commit = on_commit
        self._max_batch = max_batch
        self._cache: OrderedDict[UUID, Aggregate] = OrderedDict()
        self._cache_size = cache_size
        self._queue: queue.SimpleQueue[list[_Job] | None] = queue.SimpleQueue()
        self._waiting: dict[asyncio.AbstractEventLoop, list[_Job]] = {}  # per loop, until its next pass
        self._thread = threading.Thread(target=self._run, name="registry-writer", daemon=True)
        self.batches = 0
        self.commands = 0
        self._forget_all = False

    def start(self) -> None:
        self._thread.start()

    def forget_everything(self) -> None:
        """Drop the cached aggregates before the next batch (an erasure: they hold personal data in clear)."""
        self._forget_all = True

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    async def execute(
        self, command: Callable[[UnitOfWork], T], receipt: Receipt | None = None, audit: Any = None
    ) -> Committed[T]:
        """Run and commit `command`; its `receipt` (the Idempotency-Key's) is stored in the same transaction, and
        so is its `audit` entry where the store can (the answer's `audited` says whether it was)."""
        loop = asyncio.get_running_loop()
        job = _Job(command, loop, loop.create_future(), receipt, audit)
        waiting = self._waiting.get(loop)
        if waiting is None:
            waiting = self._waiting[loop] = []
            loop.call_soon(self._hand_over, loop)
        waiting.append(job)
        return await job.future

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        """The commands this loop's requests submitted in one pass go to the writer together: one wake-up of its
        thread instead of one per command, and batches as large as the requests that were ready at once."""
        self._queue.put(self._waiting.pop(loop))

    # --- the writer thread ---
    def _run(self) -> None:
        carried: list[_Job] = []  # what did not fit in the last batch (max_batch), in submission order
        while True:
            if carried:
                batch, carried = carried, []
            else:
                jobs = self._queue.get()
                if jobs is None:
                    return
                batch = list(jobs)
            while len(batch) < self._max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)
                    break
                batch.extend(more)
            batch, carried = batch[: self._max_batch], batch[self._max_batch :]
            try:
                self._commit(batch)
            except Exception as exc:  # the store failed: every waiting request learns it
                log.exception("writer batch failed")
                for item in batch:
                    item.settle(error=exc)

    def _commit(self, batch: list[_Job]) -> None:
        if self._forget_all:
            self._forget_all = False
            self._cache.clear()
        staged: dict[UUID, Aggregate] = {}
        accepted: list[_Job] = []
        recheck: list[_Job] = []
        for job in batch:
            outcome = self._run_command(job, staged)
            if outcome is _OK:
                accepted.append(job)
            elif outcome is _RECHECK:
                recheck.append(job)
        if accepted:
            events = [event for job in accepted for event in job.events]
            try:
                recordings = self._app.save_events(events, **self._extras(accepted)) if events else []
            except IntegrityError:
                # Another writer (another process on the same database) got there first: our cached copies
                # are stale. Re-run each command alone against the store.
                for job in accepted:
                    self._forget(job.touched)
                self._commit_one_by_one(accepted)
            else:
                self._remember(staged)
                self._settle(accepted, recordings)
        if recheck:
            self._commit_one_by_one(recheck)

    def _commit_one_by_one(self, jobs: list[_Job]) -> None:
        """Each command alone, on aggregates loaded from the store; a conflict with another writer is retried
        (commands are pure functions of the state they load), and only reported after several attempts."""
        for job in jobs:
            for attempt in range(1, self.CONFLICT_ATTEMPTS + 1):
                staged: dict[UUID, Aggregate] = {}
                if self._run_command(job, staged, fresh=True) is not _OK:
                    break
                try:
                    recordings = self._app.save_events(job.events, **self._extras([job])) if job.events else []
                except IntegrityError:
                    self._forget(job.touched)
                    if attempt == self.CONFLICT_ATTEMPTS:
                        job.settle(error=Conflict("the contract was changed by another request at the same moment"))
                    elif attempt >= 3:
                        # Two writers retrying in lockstep on one registration book: step out of phase.
                        time.sleep(random.uniform(0, 0.002 * attempt))
                    continue
                self._remember(staged)
                self._settle([job], recordings)
                break

    def _run_command(self, job: _Job, staged: dict[UUID, Aggregate], fresh: bool = False) -> object:
        """Run one command. A command that fails on state taken from memory (the cache, or this batch's staged
        changes) is not answered yet: with another writer on the same database that state may be stale, so it
        is re-run on state loaded from the store (_RECHECK) before its error is final."""
        job.events, job.touched = [], {}
        from_memory: list[UUID] = []

        def load(aggregate_id: UUID) -> Aggregate | None:
            if aggregate_id in staged:
                from_memory.append(aggregate_id)
                return copy.deepcopy(staged[aggregate_id])
            if not fresh:
                cached = self._cache.get(aggregate_id)
                if cached is not None:
                    from_memory.append(aggregate_id)
                    self._cache.move_to_end(aggregate_id)
                    return copy.deepcopy(cached)
            try:
                return self._app.repository.get(aggregate_id)
            except AggregateNotFoundError:
                return None

        uow = UnitOfWork(
            load, peek=lambda aggregate_id: aggregate_id in staged or aggregate_id in self._cache, careful=fresh
        )
        try:
            job.result = job.command(uow)
        except Exception as exc:
            if from_memory and not fresh:
                return _RECHECK
            self._forget(uow.touched)
            job.settle(error=exc)
            return _FAILED
        for aggregate in uow.touched.values():
            job.events.extend(aggregate.collect_events())
        job.touched = uow.touched
        if job.receipt is not None:
            job.receipt.reference = job.receipt.refer(job.result)
        staged.update(uow.touched)
        return _OK

    def _settle(self, jobs: list[_Job], recordings: list) -> None:
        self.batches += 1
        self.commands += len(jobs)
        index = 0
        last = None
        appended = sum(len(job.events) for job in jobs)
        answers: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future, Committed]]] = {}
        for job in jobs:
            position = None
            for _ in job.events:
                position = recordings[index].notification.id
                index += 1
            last = position or last
            answers.setdefault(job.loop, []).append((job.future, Committed(job.result, position, job.audited)))
        # Before any answer: a client that reads the feed once answered finds its events' head there.
        if last is not None:
            self._on_commit(last, appended)
        # One wake-up of each waiting loop for the whole batch, not one per command: each call_soon_threadsafe
        # writes to the loop's self-pipe (a system call, and a pass of the loop) while the batch's requests wait.
        for loop, settled in answers.items():
            loop.call_soon_threadsafe(_resolve_all, settled)

    def _extras(self, jobs: list[_Job]) -> dict[str, list]:
        """What is stored with the jobs' events: their receipts, and their audit entries where the store takes
        them (a job without events stores nothing: its request's entry is left to the audit middleware)."""
        extras = {"receipts": _receipts(jobs)}
        stores_audit = getattr(self._app.recorder, "stores_audit", None)
        for job in jobs:
            job.audited = False
        if stores_audit is not None and stores_audit():
            audited = [job for job in jobs if job.audit is not None and job.events]
            for job in audited:
                job.audited = True
            extras["audits"] = [job.audit for job in audited]
        return extras

    def _remember(self, staged: dict[UUID, Aggregate]) -> None:
        for aggregate_id, aggregate in staged.items():
            self._cache[aggregate_id] = aggregate
            self._cache.move_to_end(aggregate_id)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def _forget(self, touched: dict[UUID, Aggregate]) -> None:
        for aggregate_id in touched:
            self._cache.pop(aggregate_id, None)


def _resolve_all(settled: list[tuple[asyncio.Future, Any]]) -> None:
    for future, result in settled:
        if not future.done():  # the request was cancelled (its client went away)
            future.set_result(result)


def _receipts(jobs: list[_Job]) -> list[Receipt]:
    """The receipts of jobs saved together, each pointing at its job's last event among all their events."""
    receipts, count = [], 0
    for job in jobs:
        count += len(job.events)
        if job.receipt is not None and job.events:
            job.receipt.last_event = count - 1
            receipts.append(job.receipt)
    return receipts


class DiscardingWriter:
    """Runs commands exactly as the real writer does but stores nothing: the benchmark's baseline."""

    async def execute(
        self, command: Callable[[UnitOfWork], T], receipt: Receipt | None = None, audit: Any = None
    ) -> Committed[T]:
        uow = UnitOfWork(lambda _aggregate_id: None, careful=False)
        result = command(uow)
        for aggregate in uow.touched.values():
            aggregate.collect_events()
        return Committed(result, None)
