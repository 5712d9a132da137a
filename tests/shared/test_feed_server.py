"""The feed server's shared reads: the readers a commit wakes ask the log once for the page they all want, and a
reader never gets an answer older than the last commit that rang before it asked."""

from __future__ import annotations

import asyncio

from tcr_shared.feeds.server import (
    POLL_FALLBACK_SECONDS,
    NewEventsSignal,
    RenderedEvent,
    RenderedPage,
    SharedReads,
    until_next_poll,
)


class GatedLog:
    """A log whose reads wait until the test opens the gate, counting how often it is asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []
        self.gate = asyncio.Event()
        self.head = 1

    async def read(self, after: int, limit: int) -> RenderedPage:
        self.calls.append((after, limit))
        head = self.head  # what the read sees is the log when it began
        await self.gate.wait()
        events = [RenderedEvent(p, "t", b"{}") for p in range(after + 1, head + 1)][:limit]
        return RenderedPage(events, events[-1].position if events else after, head)


async def test_concurrent_readers_of_one_page_share_one_read():
    log, signal = GatedLog(), NewEventsSignal()
    signal.bind(asyncio.get_running_loop())
    shared = SharedReads(log.read, signal)
    readers = [asyncio.create_task(shared.read(0, 500)) for _ in range(50)]
    other = asyncio.create_task(shared.read(0, 10))  # another page is another read
    while len(log.calls) < 2:
        await asyncio.sleep(0)
    log.gate.set()
    pages = await asyncio.gather(*readers)
    await other
    assert log.calls == [(0, 500), (0, 10)]
    assert all(page is pages[0] for page in pages)
    assert [e.position for e in pages[0].events] == [1]


async def test_a_reader_after_a_commit_does_not_join_an_older_read():
    log, signal = GatedLog(), NewEventsSignal()
    signal.bind(asyncio.get_running_loop())
    shared = SharedReads(log.read, signal)
    early = asyncio.create_task(shared.read(0, 500))
    while not log.calls:  # the first read has begun
        await asyncio.sleep(0)
    log.head = 2  # a commit lands while the first read is under way, and rings
    signal.ring()
    await asyncio.sleep(0)
    late = asyncio.create_task(shared.read(0, 500))
    while len(log.calls) < 2:  # a read of its own, not the first one joined
        await asyncio.sleep(0)
    log.gate.set()
    assert [e.position for e in (await early).events] == [1]
    assert [e.position for e in (await late).events] == [1, 2]
    assert log.calls == [(0, 500), (0, 500)]


async def test_a_reader_that_goes_away_does_not_cancel_the_shared_read():
    log, signal = GatedLog(), NewEventsSignal()
    signal.bind(asyncio.get_running_loop())
    shared = SharedReads(log.read, signal)
    leaving = asyncio.create_task(shared.read(0, 500))
    staying = asyncio.create_task(shared.read(0, 500))
    while not log.calls:
        await asyncio.sleep(0)
    leaving.cancel()
    log.gate.set()
    assert [e.position for e in (await staying).events] == [1]
    assert log.calls == [(0, 500)]


def test_stream_frames_are_the_events_as_server_sent_events():
    page = RenderedPage(
        [RenderedEvent(7, "tcr.x.v1", b'{"a":1}'), RenderedEvent(9, "tcr.y.v1", b'{"b":"\\u4e2d"}')], 9, 9
    )
    assert page.stream_frames == (
        b'id: 7\r\nevent: tcr.x.v1\r\ndata: {"a":1}\r\n\r\nid: 9\r\nevent: tcr.y.v1\r\ndata: {"b":"\\u4e2d"}\r\n\r\n'
    )


def test_fallback_polls_fall_on_the_same_instants_whenever_readers_began():
    ends = {round(now + until_next_poll(now), 6) for now in (100.0001, 100.25, 100.5, 100.999)}
    assert ends == {101.0}
    assert 0 < until_next_poll(7.0) <= POLL_FALLBACK_SECONDS
