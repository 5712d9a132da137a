"""The feed serves each public event's JSON rendered once (bytes cached by position): the bytes served are
exactly those of the FeedPage the log reads, as FastAPI serialised it before, on the first read and on later
(cached) reads alike, for whole pages, partial pages, pages that skip non-public events and long polls."""

from __future__ import annotations

import asyncio

from pydantic import TypeAdapter

from tcr_registry.adapters.feeds.event_log import RenderedEvents
from tcr_shared.language.events.envelope import FeedPage

PAGE = TypeAdapter(FeedPage)


async def served(registry, reader: dict, **params) -> bytes:
    r = await registry.client.get("/v1/events", params=params, headers=reader)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    return r.content


async def expected(registry, after: int, limit: int) -> bytes:
    return PAGE.dump_json(await registry.runtime.event_log.read(after, limit))


async def test_served_bytes_are_the_feed_page_bytes_before_and_after_caching(registry):
    start = await registry.head()
    point = await registry.point("6401")
    certified = await registry.certified(point)
    r = await registry.client.post(
        f"/v1/contracts/{certified['id']}/amend",
        json={"reason": "改正金额", "changes": {"amount": "9100000.00"}},
        headers=point.headers,
    )
    assert r.status_code == 200
    await registry.submit(point)
    await registry.every_kind_of_event(await registry.point("6400"))
    reader = await registry.key("partner")
    head = await registry.head()
    for after, limit in ((start, 1000), (start, 2), (start + 1, 3), (0, 1000), (head, 10)):
        first = await served(registry, reader, after=after, limit=limit)
        again = await served(registry, reader, after=after, limit=limit)
        assert first == again == await expected(registry, after, limit), (after, limit)
    page = PAGE.validate_json(await served(registry, reader, after=start, limit=1000))
    kinds = {e.type.split(".")[-2] for e in page.events}
    assert kinds == {"submitted", "certified", "amended", "withdrawn", "rejected", "revoked"}


async def test_a_long_poll_serves_the_appended_event_as_the_page_bytes(registry):
    point = await registry.point("6401")
    reader = await registry.key("partner")
    head = await registry.head()
    waiting = asyncio.create_task(served(registry, reader, after=head, limit=100, wait=10))
    await registry.submit(point)
    assert await waiting == await expected(registry, head, 100)


def test_rendered_events_keep_the_most_recently_used_within_capacity():
    cache = RenderedEvents(capacity=2)
    cache.put(1, b"one")
    cache.put(2, b"two")
    assert cache.get(1) == b"one"  # 1 is now the most recently used
    cache.put(3, b"three")
    assert (cache.get(1), cache.get(2), cache.get(3)) == (b"one", None, b"three")
