"""The follower says honestly where it stands: state, lag only when the head is known, the event it is stuck on;
stalled after `stall_after` seconds on one event (not healthy), never skipping it, and resuming by itself.
A fake feed and a sink that fails N times; a hand-moved clock (no waiting on real time)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest

from tcr_shared.feeds.follower import Follower
from tcr_shared.feeds.sources import Reachability
from tcr_shared.language.events.envelope import FeedEvent, FeedPage

STALL_AFTER = 30.0


def event(position: int) -> FeedEvent:
    return FeedEvent(
        id=f"evt-{position}",
        source="/tcr/test",
        type="tcr.test.happened.v1",
        time="2026-01-01T00:00:00Z",
        subject=f"c-{position}",
        position=position,
        data={},
    )


class FakeFeed:
    """Pages of two events up to `head`, then empty pages; `block` pauses it like a long poll with nothing new;
    `broken` makes reading it fail."""

    def __init__(self, head: int) -> None:
        self.events = [event(p) for p in range(1, head + 1)]
        self.broken: Exception | None = None
        self.reach: Reachability | None = None
        self.idle = asyncio.Event()

    async def follow(self, after: int) -> AsyncIterator[FeedPage]:
        while True:
            if self.broken:
                raise self.broken
            batch = [e for e in self.events if e.position > after][:2]
            head = len(self.events)
            if not batch:
                self.idle.set()
                await asyncio.sleep(0.01)
            yield FeedPage(events=batch, next_after=batch[-1].position if batch else after, head=head)
            after = batch[-1].position if batch else after


class FlakySink:
    """Applies pages in order; fails on the page that holds `poison` until `failures` is used up."""

    def __init__(self, poison: int | None = None, failures: int = 0) -> None:
        self.applied: list[int] = []
        self.at = 0
        self.poison, self.failures = poison, failures
        self.attempts = asyncio.Condition()
        self.tries = 0

    async def position(self) -> int:
        return self.at

    async def apply(self, events: Sequence[FeedEvent], position: int) -> None:
        async with self.attempts:
            self.tries += 1
            self.attempts.notify_all()
        if self.failures and any(e.position == self.poison for e in events):
            self.failures -= 1
            raise ValueError("NUL byte in contract title")
        self.applied += [e.position for e in events]
        self.at = position

    async def wait_tries(self, n: int) -> None:
        async with self.attempts:
            await asyncio.wait_for(self.attempts.wait_for(lambda: self.tries >= n), 10)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def running(follower: Follower):
    task = asyncio.create_task(follower.run())
    await asyncio.sleep(0)
    return task


async def until(predicate, what: str) -> None:
    for _ in range(2000):  # bounded by steps, not by time
        if predicate():
            return
        await asyncio.sleep(0.005)
    pytest.fail(what)


async def test_before_the_first_page_the_lag_is_unknown_not_zero() -> None:
    sink = FlakySink()
    sink.position = _never  # the database does not answer yet
    follower = Follower("registry", FakeFeed(head=10), sink)
    status = follower.status.as_dict()
    assert status["state"] == "starting" and status["head"] is None and status["lag"] is None
    assert {"feed", "position", "head", "lag", "events_applied", "last_error"} <= status.keys()


async def _never() -> int:
    await asyncio.Event().wait()
    return 0


async def test_caught_up_after_applying_everything_in_order() -> None:
    feed, sink = FakeFeed(head=9), FlakySink()
    follower = Follower("registry", feed, sink, retry_pause=0)
    task = await running(follower)
    try:
        await until(lambda: follower.status.state == "caught_up", "never caught up")
        status = follower.status.as_dict()
        assert status["lag"] == 0 and status["head"] == 9 and status["events_applied"] == 9
        assert sink.applied == list(range(1, 10))
        assert follower.healthy()
    finally:
        task.cancel()


async def test_a_poisoned_event_stalls_the_follower_which_resumes_by_itself_without_skipping() -> None:
    clock = Clock()
    feed, sink = FakeFeed(head=8), FlakySink(poison=5, failures=10**9)  # fails until the test fixes the cause
    follower = Follower("registry", feed, sink, stall_after=STALL_AFTER, retry_pause=0.005, clock=clock)
    task = await running(follower)
    try:
        await sink.wait_tries(4)  # 2 pages applied, then failures on the page 5-6
        status = follower.status.as_dict()
        assert status["state"] == "following"  # failing, not yet for long
        assert status["position"] == 4 and status["lag"] == 4
        assert status["stuck"]["event_id"] == "evt-5" and status["stuck"]["after"] == 4
        assert "NUL byte" in status["stuck"]["error"] and "NUL byte" in status["last_error"]
        assert status["stalled_since"] is None and follower.healthy()

        clock.now += STALL_AFTER + 1  # the same event keeps failing for longer than stall_after seconds
        await sink.wait_tries(sink.tries + 2)
        status = follower.status.as_dict()
        assert status["state"] == "stalled" and not follower.healthy() and not await follower.ready()
        assert status["stalled_since"] is not None and status["position"] == 4 and sink.applied == [1, 2, 3, 4]
        assert follower.status.stalled_for == 1.0 and status["stuck"]["attempts"] >= 3

        sink.failures = 0  # the cause is fixed (a patched sink, a database back): no one restarts anything
        await until(lambda: follower.status.state == "caught_up", "did not resume once the cause was gone")
        assert sink.applied == list(range(1, 9))  # nothing skipped, nothing twice, in order
        status = follower.status.as_dict()
        assert status["stuck"] is None and status["stalled_since"] is None and status["last_error"] is None
        assert follower.healthy()
    finally:
        task.cancel()


async def test_a_failure_that_passed_does_not_count_towards_a_later_stall() -> None:
    clock = Clock()
    sink = FlakySink(poison=3, failures=2)
    follower = Follower("registry", FakeFeed(head=6), sink, stall_after=STALL_AFTER, retry_pause=0, clock=clock)
    task = await running(follower)
    try:
        await until(lambda: follower.status.state == "caught_up", "never caught up")
        assert sink.tries == 5 and sink.applied == list(range(1, 7))
        clock.now += STALL_AFTER * 2
        assert follower.status.state == "caught_up" and follower.healthy() and follower.status.stalled_for == 0
    finally:
        task.cancel()


async def test_an_unreadable_feed_is_unreachable_with_its_error() -> None:
    feed = FakeFeed(head=3)
    feed.broken = ConnectionRefusedError(111, "Connection refused")
    follower = Follower("registry", feed, FlakySink(), retry_pause=0)
    task = await running(follower)
    try:
        await until(lambda: follower.status.state == "unreachable", "not unreachable")
        status = follower.status.as_dict()
        assert status["lag"] is None and "Connection refused" in status["last_error"]
        assert follower.healthy()  # the publisher being down is not this service's fault: stay ready
        feed.broken = None
        await until(lambda: follower.status.state == "caught_up", "did not recover")
    finally:
        task.cancel()


async def test_a_source_that_retries_inside_says_unreachable_through_its_reach() -> None:
    feed = FakeFeed(head=0)
    feed.reach = Reachability("http://registry", reachable=False, last_error="connection refused")
    follower = Follower("registry", feed, FlakySink())
    status = follower.status.as_dict()
    assert status["state"] == "unreachable" and status["last_error"] == "connection refused"


async def test_a_standby_watches_the_position_another_replica_applies() -> None:
    sink = FlakySink()
    follower = Follower("registry", FakeFeed(head=4), sink)
    watching = asyncio.create_task(follower.watch(interval=0.01))
    try:
        waiter = asyncio.create_task(follower.wait_for(3, timeout=10))
        await asyncio.sleep(0)
        assert not waiter.done()
        sink.at = 3  # the leader replica applied up to 3 in the shared database
        assert await waiter
        assert follower.status.position == 3 and follower.status.events_applied == 0
    finally:
        watching.cancel()


def test_the_follower_gauges_say_unknown_and_stalled() -> None:
    from tcr_shared.feeds.follower import follower_metrics
    from tcr_shared.platform.observability import Metrics

    clock, metrics = Clock(), Metrics("test")
    follower = Follower("registry", FakeFeed(head=1), FlakySink(), stall_after=STALL_AFTER, clock=clock)
    follower_metrics(metrics, follower)
    text = metrics.render().body.decode()
    assert 'tcr_follower_lag_events{feed="registry"} NaN' in text
    assert 'tcr_follower_state{feed="registry",state="starting"} 1.0' in text
    follower._sink_failed(_failure(event(1)))
    clock.now += STALL_AFTER + 5
    text = metrics.render().body.decode()
    assert 'tcr_follower_stalled_seconds{feed="registry"} 5.0' in text
    assert 'tcr_follower_state{feed="registry",state="stalled"} 1.0' in text


def _failure(on: FeedEvent):
    from tcr_shared.feeds.follower import _SinkFailed

    return _SinkFailed(ValueError("bad"), on)
