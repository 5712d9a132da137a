"""Following a feed exactly once: each page is applied in one transaction together with the position reached.

A `Sink` owns that transaction (a SQLAlchemy projection, or an eventsourcing process application); the
`Follower` owns the loop: where to start, retries, and the lag figures that /v1/status and /metrics report.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from tcr_shared.language.events.envelope import FeedEvent, FeedPage

log = logging.getLogger("tcr.follower")


class PageSource(Protocol):
    def follow(self, after: int) -> AsyncIterator[FeedPage]: ...


class Sink(Protocol):
    async def position(self) -> int:
        """The last position applied (0 when nothing was)."""

    async def apply(self, events: Sequence[FeedEvent], position: int) -> None:
        """Apply the events and record `position`, atomically."""


@dataclass
class FollowerStatus:
    feed: str
    position: int = 0
    head: int = 0
    events_applied: int = 0
    last_applied_at: float | None = None
    last_error: str | None = None
    listeners: list[Callable[[], None]] = field(default_factory=list)

    @property
    def lag(self) -> int:
        return max(0, self.head - self.position)

    def as_dict(self) -> dict:
        return {
            "feed": self.feed,
            "position": self.position,
            "head": self.head,
            "lag": self.lag,
            "events_applied": self.events_applied,
            "last_error": self.last_error,
        }


class Follower:
    def __init__(self, name: str, source: PageSource, sink: Sink) -> None:
        self.status = FollowerStatus(feed=name)
        self._source = source
        self._sink = sink
        self._caught_up = asyncio.Event()
        self._progress = asyncio.Condition()

    async def run(self) -> None:
        """Follow until cancelled. Errors in the sink are retried after a pause, never skipped."""
        while True:
            try:
                await self._follow_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a database hiccup: retry from the recorded position
                self.status.last_error = repr(exc)
                log.exception("follower %s failed; retrying", self.status.feed)
                await asyncio.sleep(1.0)

    async def _follow_once(self) -> None:
        self.status.position = await self._sink.position()
        async for page in self._source.follow(self.status.position):
            self.status.head = max(page.head, page.next_after)
            if page.next_after > self.status.position:
                await self._sink.apply(page.events, page.next_after)
                self.status.position = page.next_after
                self.status.events_applied += len(page.events)
                self.status.last_applied_at = time.time()
                self.status.last_error = None
                async with self._progress:
                    self._progress.notify_all()
            if self.status.lag == 0:
                self._caught_up.set()

    async def wait_for(self, position: int, timeout: float = 10.0) -> bool:
        """Wait until the follower has applied `position` (read-your-writes for clients holding TCR-Position)."""

        async def reached() -> None:
            async with self._progress:
                await self._progress.wait_for(lambda: self.status.position >= position)

        try:
            await asyncio.wait_for(reached(), timeout)
        except TimeoutError:
            return False
        return True
