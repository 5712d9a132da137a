"""Public events rendered once, ever (PostgreSQL, migration 0007): the feed keeps each page it renders, and a
restarted registry (or one that no longer holds a stretch in memory) serves that stretch from the database: the same
bytes as rendering it, without rendering it. A stretch never kept, or kept by another rendering, is rendered from the
log again, never skipped."""

from __future__ import annotations

import pytest
from psycopg.rows import tuple_row
from pydantic import TypeAdapter

from tcr_registry.adapters.feeds import event_log
from tcr_registry.adapters.feeds.event_log import RegistryEventLog
from tcr_registry.adapters.feeds.rendered_store import RENDERING
from tcr_shared.language.events.envelope import FeedPage
from tests.support.registry import RegistryEnv, registry_in_process

PAGE = TypeAdapter(FeedPage)


@pytest.fixture
async def history(make_pg_database, tmp_path):
    """A PostgreSQL registry with every kind of event, individuals among the parties (public events among others)."""
    url = make_pg_database("tcr_rendered_store")
    async with registry_in_process(url, tmp_path) as client:
        env = RegistryEnv(client, "postgresql", url)
        point = await env.point("6400")  # the region's: every_kind_of_event's parties are in several counties
        for _ in range(2):
            await env.every_kind_of_event(point)
            await env.certified(point)
        yield env


def pages_of(log: RegistryEventLog, after: int, limit: int) -> list[bytes]:
    """Every page from `after` to the head, as served."""
    pages = []
    while True:
        page = log.read_rendered_sync(after, limit)
        pages.append(page.body())
        if page.next_after == after:
            return pages
        after = page.next_after


def expected_pages(log: RegistryEventLog, after: int, limit: int) -> list[bytes]:
    """The same pages from the log's FeedPage read (decoded and serialised by pydantic), nothing rendered or kept."""
    pages = []
    while True:
        page = log.read_sync(after, limit)
        pages.append(PAGE.dump_json(page))
        if page.next_after == after:
            return pages
        after = page.next_after


class Renderings:
    """Counts the events the feed renders (a spy on the one function that renders)."""

    def __init__(self, monkeypatch) -> None:
        self.count = 0
        render = event_log.render_event

        def counted(domain_event, position):
            self.count += 1
            return render(domain_event, position)

        monkeypatch.setattr(event_log, "render_event", counted)


def kept(
    env: RegistryEnv, statement: str = "SELECT count(*), min(rendering), max(rendering) FROM registry_rendered_events"
):
    with env.runtime.app.recorder.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
        return curs.execute(statement).fetchone()


async def test_a_fresh_feed_serves_kept_pages_without_rendering_them(history, monkeypatch):
    first = RegistryEventLog(history.runtime.app)
    head = await history.head()
    public = sum(PAGE.validate_json(body).events.__len__() for body in expected_pages(first, 0, 1000))
    assert pages_of(first, 0, 7) == expected_pages(first, 0, 7)
    first.settle()
    assert kept(history)[0] == head  # every position of the log, public or not

    renderings = Renderings(monkeypatch)
    for limit in (1, 3, 7, 1000):
        for after in (0, 2, head - 5):
            fresh = RegistryEventLog(history.runtime.app)  # as after a restart: nothing in memory
            assert pages_of(fresh, after, limit) == expected_pages(fresh, after, limit), (after, limit)
    assert renderings.count == 0 and public > 0


async def test_a_stretch_never_kept_is_rendered_from_the_log(history, monkeypatch):
    head = await history.head()
    history.runtime.event_log.settle()
    kept(history, "DELETE FROM registry_rendered_events RETURNING 1")  # what the served read of the head kept
    middle = head // 2
    later = RegistryEventLog(history.runtime.app)
    pages_of(later, middle, 1000)  # only (middle, head] is kept
    later.settle()
    assert kept(history)[0] == head - middle

    renderings = Renderings(monkeypatch)
    fresh = RegistryEventLog(history.runtime.app)
    assert pages_of(fresh, 0, middle) == expected_pages(fresh, 0, middle)
    before_middle = PAGE.validate_json(expected_pages(fresh, 0, middle)[0]).events
    assert renderings.count == len(before_middle)  # the page not kept, and nothing else
    fresh.settle()
    assert kept(history)[0] == head


async def test_rows_of_another_rendering_are_rendered_again_and_replaced(history, monkeypatch):
    first = RegistryEventLog(history.runtime.app)
    pages_of(first, 0, 1000)
    first.settle()
    kept(history, "UPDATE registry_rendered_events SET rendering = rendering - 1, json = 'stale' RETURNING 1")

    renderings = Renderings(monkeypatch)
    fresh = RegistryEventLog(history.runtime.app)
    assert pages_of(fresh, 0, 1000) == expected_pages(fresh, 0, 1000)
    assert renderings.count > 0
    fresh.settle()
    assert kept(history)[1:] == (RENDERING, RENDERING)


async def test_a_restarted_registry_serves_the_kept_feed(make_pg_database, tmp_path, monkeypatch):
    url = make_pg_database("tcr_rendered_restart")
    async with registry_in_process(url, tmp_path) as client:
        env = RegistryEnv(client, "postgresql", url)
        point = await env.point("6401")
        for _ in range(3):
            await env.certified(point)
        before = await env.feed()
        env.runtime.event_log.settle()
    renderings = Renderings(monkeypatch)
    async with registry_in_process(url, tmp_path) as client:
        assert await RegistryEnv(client, "postgresql", url).feed() == before
    assert renderings.count == 0 and len(before) == 6
