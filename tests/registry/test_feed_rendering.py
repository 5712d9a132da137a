"""The feed serves each public event's JSON rendered once (bytes cached by position): the bytes served are
exactly those of the FeedPage the log reads, as FastAPI serialised it before, on the first read and on later
(cached) reads alike, for whole pages, partial pages, pages that skip non-public events and long polls."""

from __future__ import annotations

import asyncio

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from tcr_registry.adapters.feeds import public_events
from tcr_registry.adapters.feeds.event_log import KnownPositions, RecentHead, RenderedEvents
from tcr_shared.language.events.envelope import FeedEvent, FeedPage

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


def test_known_positions_serve_pages_only_inside_what_reads_returned():
    known = KnownPositions(capacity=100)
    assert known.page(0, 10) is None  # nothing read yet
    known.record(0, [1, 2, 4, 5], [True, False, True, True])  # position 3 was never committed (a gap)
    assert known.page(0, 2) == ([1, 2], [1], 2)
    assert known.page(2, 10) == ([4, 5], [4, 5], 5)  # the page reaches the end of what is known
    assert known.page(5, 10) == ([], [], 5)  # after the end: the caller reads the database from 5
    assert known.page(6, 10) is None
    known.record(5, [6, 7], [False, True])  # the next read extends the stretch
    assert known.page(3, 10) == ([4, 5, 6, 7], [4, 5, 7], 7)
    known.record(4, [5, 6, 7, 8], [True, False, True, True])  # overlapping: only what is new is added
    assert known.page(0, 100) == ([1, 2, 4, 5, 6, 7, 8], [1, 4, 5, 7, 8], 8)


def test_known_positions_move_to_a_read_beyond_them_and_keep_within_capacity():
    known = KnownPositions(capacity=4)
    known.record(10, [11, 12], [True, True])
    known.record(0, [1, 2], [True, True])  # below and not touching: ignored
    assert known.page(0, 10) is None and known.page(10, 10) == ([11, 12], [11, 12], 12)
    known.record(5, [6, 8, 11], [True, False, True])  # reaches the stretch from below: joined
    assert known.page(5, 10) == ([6, 8, 11, 12], [6, 11, 12], 12)
    known.record(12, [13, 14], [True, True])  # over capacity: the oldest positions go
    assert known.page(5, 10) is None
    assert known.page(8, 10) == ([11, 12, 13, 14], [11, 12, 13, 14], 14)
    known.record(20, [21], [True])  # a reader jumping ahead starts a new stretch there
    assert known.page(14, 10) is None and known.page(20, 10) == ([21], [21], 21)


def test_a_page_head_is_read_again_once_too_old_and_raised_by_this_process_commits():
    database = {"head": 7, "reads": 0}

    def read() -> int:
        database["reads"] += 1
        return database["head"]

    reused = RecentHead(read, reuse_seconds=3600)
    assert reused.recent() is None  # never read: a page must ask
    assert reused.get() == 7 and reused.get() == 7 and database["reads"] == 1
    database["head"] = 9  # another process commits: shown once the window has passed, not before
    assert reused.recent() == 7
    reused.committed(12)  # this process commits: shown at once, with no read
    assert (reused.recent(), reused.get(), database["reads"]) == (12, 12, 1)
    reused.committed(10)  # a batch that committed before the one already seen does not lower it
    assert reused.get() == 12

    always = RecentHead(read, reuse_seconds=0)
    assert (always.get(), always.get(), always.recent()) == (9, 9, None) and database["reads"] == 3


async def test_pages_served_from_memory_are_the_page_bytes(registry):
    """A page read twice: the second comes from KnownPositions (no page query); same bytes, every page size."""
    point = await registry.point("6401")
    for _ in range(3):
        await registry.certified(point)
    reader = await registry.key("partner")
    head = await registry.head()
    start = max(0, head - 12)
    for limit in (1, 2, 5, 1000):
        after = start
        while after < head:
            first = await served(registry, reader, after=after, limit=limit)
            assert first == await served(registry, reader, after=after, limit=limit)
            assert first == await expected(registry, after, limit), (after, limit)
            after = PAGE.validate_json(first).next_after


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(data=st.dictionaries(st.text(), _JSON_VALUES, max_size=4), position=st.integers(1, 2**63 - 1))
def test_orjson_rendering_writes_what_pydantic_writes(data, position):
    """render_event writes the event with orjson; whatever the values (any text, escapes, floats, nesting),
    the bytes are pydantic's for the same FeedEvent (or render_event falls back to pydantic)."""
    fields = {
        "specversion": "1.0",
        "id": "i",
        "source": "/tcr/registry",
        "type": "tcr.registry.contract.submitted.v1",
        "time": "2026-01-01T00:00:00+00:00",
        "subject": "s",
        "datacontenttype": "application/json",
        "position": position,
        "data": data,
    }
    try:
        written = orjson.dumps(fields, default=public_events._unusual, option=public_events._PLAIN_JSON)
    except TypeError:
        return  # render_event gives pydantic's bytes in that case
    assert written == public_events.render(FeedEvent(**fields))
