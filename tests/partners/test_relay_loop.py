"""The relay loop (tcr_relay.application.relay) in memory, against a fake publisher and a fake feed: it resumes
after what the publisher holds, publishes in feed order, retries a failed publish with the same event and never
skips one. The JetStream adapter is tested against a real NATS server in test_relay.py."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from tcr_relay.application.relay import SourceStatus, relay_source
from tcr_shared.language.events.envelope import FeedEvent, FeedPage


def event(position: int) -> FeedEvent:
    return FeedEvent(
        id=f"e{position}",
        source="/tcr/registry",
        type="tcr.registry.contract.submitted.v1",
        time="2026-03-01T00:00:00Z",
        subject=f"c{position}",
        position=position,
        data={},
    )


@dataclass
class Feed:
    """Serves its pages from where it is asked, then waits forever (a long poll with nothing new)."""

    pages: list[list[int]]
    asked_after: int | None = None

    async def follow(self, after: int, *, wait: float = 20.0):
        self.asked_after = after
        for positions in self.pages:
            yield FeedPage(events=[event(p) for p in positions], next_after=max(positions))
        await asyncio.Event().wait()


class Publisher:
    def __init__(self, held: int, fail_once_at: int | None = None, duplicates: frozenset[int] = frozenset()):
        self.held = held
        self.fail_once_at = fail_once_at
        self.duplicates = duplicates
        self.published: list[int] = []
        self.attempts: list[int] = []
        self.reached: dict[int, asyncio.Event] = {}

    async def last_position(self, source: str) -> int:
        assert source == "registry"
        return self.held

    async def publish(self, source: str, published: FeedEvent) -> bool:
        self.attempts.append(published.position)
        if published.position == self.fail_once_at:
            self.fail_once_at = None
            raise TimeoutError("no acknowledgement")
        self.published.append(published.position)
        self.reached.setdefault(published.position, asyncio.Event()).set()
        return published.position in self.duplicates

    async def wait_for(self, position: int) -> None:
        await asyncio.wait_for(self.reached.setdefault(position, asyncio.Event()).wait(), timeout=30)


async def relay_until(publisher: Publisher, feed: Feed, last: int) -> SourceStatus:
    status = SourceStatus("registry")
    task = asyncio.create_task(relay_source(publisher, "registry", feed, status))
    try:
        await publisher.wait_for(last)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return status


async def test_resumes_after_what_the_publisher_holds_in_feed_order() -> None:
    publisher = Publisher(held=3, duplicates=frozenset({4}))
    feed = Feed(pages=[[2, 3, 4], [5, 6], [7]])  # a page may repeat what was already published
    status = await relay_until(publisher, feed, 7)
    assert feed.asked_after == 3
    assert publisher.published == [4, 5, 6, 7]
    assert (status.position, status.published, status.duplicates, status.errors) == (7, 4, 1, [])


async def test_a_failed_publish_is_retried_with_the_same_event_and_nothing_is_skipped() -> None:
    publisher = Publisher(held=0, fail_once_at=2)
    status = await relay_until(publisher, Feed(pages=[[1, 2, 3]]), 3)
    assert publisher.attempts == [1, 2, 2, 3]
    assert publisher.published == [1, 2, 3]
    assert status.published == 3 and len(status.errors) == 1 and "no acknowledgement" in status.errors[0]


async def test_a_failed_publish_already_in_the_stream_is_not_sent_again() -> None:
    """The acknowledgement was lost (or a second relay stored the event) and the outage outlasted JetStream's
    de-duplication window: the relay asks the stream before sending the event again."""

    class StoredAnyway(Publisher):
        async def publish(self, source: str, published: FeedEvent) -> bool:
            if published.position == self.fail_once_at:
                self.held = published.position  # stored, but the acknowledgement never came back
            return await super().publish(source, published)

    publisher = StoredAnyway(held=0, fail_once_at=2)
    status = await relay_until(publisher, Feed(pages=[[1, 2, 3]]), 3)
    assert publisher.attempts == [1, 2, 3]
    assert publisher.published == [1, 3]  # 2 is in the stream once, from the first attempt
    assert (status.published, status.duplicates, status.position) == (3, 1, 3)
