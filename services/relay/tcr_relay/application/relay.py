"""The relay loop: every event of a source's feed, published once, in feed order, against two small ports.

Where it resumes is whatever the publisher already holds (`last_position`), never a file of its own: a kill -9
between a publish and anything else can therefore neither duplicate nor skip. Publishes are sequential per
source and each is retried until acknowledged (the same event again: the publisher de-duplicates by event id), so
the destination never holds a later event without the earlier ones.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

from tcr_shared.feeds.client import Backoff
from tcr_shared.language.events.envelope import FeedEvent

log = logging.getLogger("tcr.relay")

# Long-poll wait on a feed, seconds (the publisher answers as soon as an event arrives).
FEED_WAIT = 20.0


class EventPublisher(Protocol):
    """Where the events go (the JetStream adapter implements it)."""

    async def last_position(self, source: str) -> int:
        """The highest feed position of `source` already published (0 if none)."""
        ...

    async def publish(self, source: str, event: FeedEvent) -> bool:
        """Publish one event and wait for its acknowledgement; True when it was already there (a duplicate).
        Raises when it could not be published (the caller sends the same event again)."""
        ...


class FeedPage(Protocol):
    events: list[FeedEvent]
    next_after: int


class Feed(Protocol):
    """A publisher's feed (`tcr_shared.feeds.client.FeedClient`)."""

    def follow(self, after: int, *, wait: float = ...) -> AsyncIterator[FeedPage]: ...


@dataclass
class SourceStatus:
    source: str
    position: int = 0
    published: int = 0
    duplicates: int = 0
    errors: list[str] = field(default_factory=list)


async def relay_source(publisher: EventPublisher, source: str, feed: Feed, status: SourceStatus) -> None:
    """Follow `feed` from what `publisher` already holds and publish every later event, forever."""
    status.position = await publisher.last_position(source)
    log.info("relay %s: resuming after position %s", source, status.position)
    async for page in feed.follow(status.position, wait=FEED_WAIT):
        for event in page.events:
            if event.position <= status.position:
                continue
            await publish_until_acknowledged(publisher, source, event, status)
        status.position = max(status.position, page.next_after)


async def publish_until_acknowledged(
    publisher: EventPublisher, source: str, event: FeedEvent, status: SourceStatus
) -> None:
    backoff = Backoff(initial=0.2, maximum=10.0)
    while True:
        try:
            duplicate = await publisher.publish(source, event)
            break
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # timeouts, no responders, reconnects: the same event again
            status.errors = (status.errors + [repr(exc)])[-5:]
            log.warning("relay %s: publishing position %s failed (%r); retrying", source, event.position, exc)
            await asyncio.sleep(backoff.next_delay())
            if await _already_held(publisher, source, event):
                duplicate = True
                break
    status.published += 1
    status.duplicates += int(duplicate)
    status.position = event.position


async def _already_held(publisher: EventPublisher, source: str, event: FeedEvent) -> bool:
    """Before sending a failed event again: is it already in the stream (our publish was stored but its
    acknowledgement lost, or another relay stored it)? JetStream's de-duplication by `Nats-Msg-Id` covers a retry
    only within its window; after a long outage this check is what keeps the event from being stored twice."""
    try:
        return await publisher.last_position(source) >= event.position
    except asyncio.CancelledError:
        raise
    except Exception:  # the stream cannot be asked either: send the event again (de-duplicated in the window)
        return False
