"""Following a feed exactly once: each page is applied in one transaction together with the position reached.

A `Sink` owns that transaction (a SQLAlchemy projection, or an eventsourcing process application); the
`Follower` owns the loop (where to start, retries) and says honestly where it stands, for /v1/status, /readyz and
/metrics:

- `state`: `starting` (no page read yet), `following` (behind the head), `caught_up`, `unreachable` (the feed
  cannot be read) or `stalled` (the sink has failed on the same event for longer than `stall_after` seconds);
- `lag` only when the head is known, else None (null in JSON): "0" would claim a certainty we lack;
- the event a failing follower is stuck on, its error, and since when.

A stalled follower never skips its event (order decides money): it keeps retrying and resumes by itself once the
cause is fixed. `healthy()` is False while it is stalled, so the service is not ready.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal, Protocol

from tcr_shared.language.events.envelope import FeedEvent, FeedPage

if TYPE_CHECKING:  # only for a type: the follower itself needs no web framework
    from tcr_shared.platform.observability import Metrics

log = logging.getLogger("tcr.follower")

State = Literal["starting", "following", "caught_up", "unreachable", "stalled"]
STATES: tuple[State, ...] = ("starting", "following", "caught_up", "unreachable", "stalled")
STALL_AFTER_SECONDS = 60.0
RETRY_PAUSE_SECONDS = 1.0


class PageSource(Protocol):
    def follow(self, after: int) -> AsyncIterator[FeedPage]: ...


class Sink(Protocol):
    async def position(self) -> int:
        """The last position applied (0 when nothing was)."""

    async def apply(self, events: Sequence[FeedEvent], position: int) -> None:
        """Apply the events and record `position`, atomically."""


@dataclass
class Stuck:
    """The sink keeps failing after `after`: on `event` (None when it failed before reading one)."""

    after: int
    event: FeedEvent | None
    error: str
    since: float  # monotonic clock: how long it has failed
    since_wall: float  # wall clock: when, for people
    attempts: int = 1

    def as_dict(self) -> dict:
        return {
            "after": self.after,
            "event_id": self.event.id if self.event else None,
            "event_type": self.event.type if self.event else None,
            "event_position": self.event.position if self.event else None,
            "error": self.error,
            "since": _iso(self.since_wall),
            "attempts": self.attempts,
        }


@dataclass
class FollowerStatus:
    feed: str
    position: int = 0
    head: int | None = None  # None until the first page says where the head is
    events_applied: int = 0
    last_applied_at: float | None = None
    last_error: str | None = None
    stuck: Stuck | None = None
    source_error: str | None = None  # the last failure to read the feed, until a page arrives
    stall_after: float = STALL_AFTER_SECONDS
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    # The source's own view of whether it reaches the feed (ObservedFeed retries inside `follow` and says so in
    # its `reach`): (reachable, error); (None, None) when the source does not say.
    reach: Callable[[], tuple[bool | None, str | None]] = field(default=lambda: (None, None), repr=False)

    @property
    def known_lag(self) -> int | None:
        """How far behind the head the follower is; None when the head is not known yet."""
        return None if self.head is None else max(0, self.head - self.position)

    @property
    def lag(self) -> int:
        """`known_lag`, with 0 for "unknown": kept for callers that need a number; prefer `known_lag`, or
        `lag_gauge` for Prometheus (NaN, Prometheus's "unknown")."""
        return self.known_lag or 0

    @property
    def lag_gauge(self) -> float:
        lag = self.known_lag
        return float("nan") if lag is None else float(lag)

    @property
    def stalled_for(self) -> float:
        """Seconds the follower has been stalled (0 when it is not): a Prometheus gauge alerts on > 0."""
        if self.stuck is None:
            return 0.0
        failing = self.clock() - self.stuck.since
        return failing - self.stall_after if failing >= self.stall_after else 0.0

    @property
    def state(self) -> State:
        if self.stuck is not None and self.clock() - self.stuck.since >= self.stall_after:
            return "stalled"
        reachable, _ = self.reach()
        if self.source_error is not None or reachable is False:
            return "unreachable"
        if self.head is None:
            return "starting"
        return "caught_up" if self.position >= self.head else "following"

    @property
    def stalled_since(self) -> str | None:
        """When the follower began failing on the event it is stalled on (only while stalled)."""
        return _iso(self.stuck.since_wall) if self.stuck and self.state == "stalled" else None

    def as_dict(self) -> dict:
        state = self.state
        _, reach_error = self.reach()
        return {
            "feed": self.feed,
            "state": state,
            "position": self.position,
            "head": self.head,
            "lag": self.known_lag,
            "events_applied": self.events_applied,
            "last_error": self.last_error or (self.source_error or reach_error if state == "unreachable" else None),
            "last_applied_at": _iso(self.last_applied_at),
            "stuck": self.stuck.as_dict() if self.stuck else None,
            "stalled_since": self.stalled_since,
            "stall_after": self.stall_after,
        }


class _SinkFailed(Exception):
    def __init__(self, error: Exception, event: FeedEvent | None) -> None:
        super().__init__(repr(error))
        self.error = error
        self.event = event


class Follower:
    def __init__(
        self,
        name: str,
        source: PageSource,
        sink: Sink,
        *,
        stall_after: float = STALL_AFTER_SECONDS,
        retry_pause: float = RETRY_PAUSE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.status = FollowerStatus(feed=name, stall_after=stall_after, clock=clock, reach=_reach_of(source))
        self._source = source
        self._sink = sink
        self._retry_pause = retry_pause
        self._wall_clock = wall_clock
        self._progress = asyncio.Condition()

    def healthy(self) -> bool:
        """False while stalled: the service should not be ready (an operator must look at the stuck event)."""
        return self.status.state != "stalled"

    async def ready(self) -> bool:
        """`healthy()` as a readiness check for `instrument(..., ready=all_ready(...))`."""
        return self.healthy()

    async def run(self) -> None:
        """Follow until cancelled. Failures are retried after a pause from the recorded position, never skipped."""
        while True:
            try:
                await self._follow_once()
            except asyncio.CancelledError:
                raise
            except _SinkFailed as failure:  # a database hiccup, or an event the sink cannot apply yet
                self._sink_failed(failure)
                log.error("follower %s failed after position %d: %s", self.status.feed, self.status.position, failure)
            except Exception as exc:  # the feed could not be read
                self.status.source_error = repr(exc)
                log.warning("follower %s cannot read its feed: %r", self.status.feed, exc)
            await asyncio.sleep(self._retry_pause)

    async def _follow_once(self) -> None:
        try:
            self.status.position = await self._sink.position()
        except Exception as exc:
            raise _SinkFailed(exc, None) from exc
        async for page in self._source.follow(self.status.position):
            self.status.source_error = None
            self.status.head = max(page.head, page.next_after)
            if page.next_after > self.status.position:
                await self._apply(page)

    async def _apply(self, page: FeedPage) -> None:
        try:
            await self._sink.apply(page.events, page.next_after)
        except Exception as exc:
            raise _SinkFailed(exc, page.events[0] if page.events else None) from exc
        if self.status.stuck is not None:
            log.warning("follower %s resumed after %d attempts", self.status.feed, self.status.stuck.attempts)
        self.status.stuck = None
        self.status.position = page.next_after
        self.status.events_applied += len(page.events)
        self.status.last_applied_at = self._wall_clock()
        self.status.last_error = None
        async with self._progress:
            self._progress.notify_all()

    def _sink_failed(self, failure: _SinkFailed) -> None:
        """Count a failure against the event it happened on; a failure on another event starts a new count."""
        status, error = self.status, repr(failure.error)
        status.last_error = error
        stuck = status.stuck
        same = stuck is not None and stuck.after == status.position and _same_event(stuck.event, failure.event)
        if same:
            stuck.attempts += 1
            stuck.error = error
            stuck.event = stuck.event or failure.event
        else:
            status.stuck = Stuck(status.position, failure.event, error, status.clock(), self._wall_clock())

    async def watch(self, interval: float = 0.5) -> None:
        """On a standby replica (another replica holds the lease and applies the feed): keep `status.position`
        current from the sink, so that `wait_for` (read-your-writes) works on every replica. Until cancelled."""
        while True:
            try:
                position = await self._sink.position()
            except Exception as exc:  # the database is down: /readyz says so; keep the last position
                log.debug("follower %s cannot read its position: %r", self.status.feed, exc)
            else:
                if position > self.status.position:
                    self.status.position = position
                    async with self._progress:
                        self._progress.notify_all()
            await asyncio.sleep(interval)

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


def follower_metrics(metrics: Metrics, *followers: Follower) -> None:
    """Gauges per followed feed on the service's /metrics: `tcr_follower_state{feed,state}` (1 for the current
    state), `tcr_follower_lag_events` (NaN while the head is unknown) and `tcr_follower_stalled_seconds` (alert
    when > 0: the follower is stuck on one event, see /v1/status)."""
    state = metrics.gauge("tcr_follower_state", "1 for the follower's current state", ("feed", "state"))
    lag = metrics.gauge("tcr_follower_lag_events", "Events the feed's head is ahead (NaN: unknown)", ("feed",))
    stalled = metrics.gauge("tcr_follower_stalled_seconds", "Seconds stalled on one event (0: not)", ("feed",))
    for follower in followers:
        status = follower.status
        for name in STATES:
            state.labels(status.feed, name).set_function(lambda s=status, n=name: float(s.state == n))
        lag.labels(status.feed).set_function(lambda s=status: s.lag_gauge)
        stalled.labels(status.feed).set_function(lambda s=status: s.stalled_for)


def _same_event(known: FeedEvent | None, new: FeedEvent | None) -> bool:
    # a failure before any event was read (the sink's position) does not tell a different event apart
    return known is None or new is None or known.id == new.id


def _reach_of(source: object) -> Callable[[], tuple[bool | None, str | None]]:
    def reach() -> tuple[bool | None, str | None]:
        observed = getattr(source, "reach", None)
        if observed is None:
            return None, None
        return getattr(observed, "reachable", None), getattr(observed, "last_error", None)

    return reach


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")
