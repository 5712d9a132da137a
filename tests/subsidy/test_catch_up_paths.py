"""The fast catch-up paths give exactly what the plain ones give: PostgreSQL's bulk statements (unnest arrays, one
statement per table per page) and SQLite's row-by-row writes produce identical state, whatever the page size;
batching feed pages into one transaction changes nothing but the number of transactions; and the registry's
fast public mapping of stored terms equals the domain's own."""

from __future__ import annotations

import asyncio
import random
from datetime import datetime

import pytest
from sqlalchemy import text

from tcr_shared.feeds.sources import BatchingSource
from tcr_shared.language.events.envelope import FeedPage
from tcr_shared.platform.database import Database
from tcr_subsidy.adapters.feeds import NotifyingSink
from tcr_subsidy.adapters.persistence import migrate
from tcr_subsidy.adapters.persistence.queries import Queries
from tcr_subsidy.adapters.rule_files import default_rule_book
from tcr_subsidy.application.projection import AwardProjection, registry_event
from tcr_subsidy.domain.decision import KNOWN_TYPES, Engine
from tcr_subsidy.domain.ledger import Ledger
from tests.subsidy.history import CST, History, party, terms


def busy_history(seed: int, contracts: int = 260) -> History:
    """Many contracts over shared beneficiaries (capped and project caps), then amendments up, down and away from
    eligibility, revocations, re-certifications that change nothing, and an unknown event type: a page then
    touches more than 100 stored contracts, awards and caps (the lookups' chunk size)."""
    rng = random.Random(seed)
    h = History()
    buyers = [party("enterprise", 300 + i) for i in range(7)] + [party("foreign")]
    sellers = [party("university", 400 + i, "640105") for i in range(5)] + [party("enterprise", 500, "640106")]
    brokers = [None, None, party("social_organisation", 600)]
    ids = []
    for i in range(contracts):
        b, s = rng.choice(buyers), rng.choice(sellers)
        t = terms(
            amount=f"{rng.randint(10_000, 9_000_000)}.{rng.randint(0, 99):02d}",
            technology_amount=f"{rng.randint(1_000, 90_000)}.00",
            buyer=b,
            seller=s,
            intermediary=rng.choice(brokers),
            result_id=rng.choice([None, "R1", "R2", f"R{i % 9}"]),
            category=rng.choice(["licence", "transfer", "development", "consulting"]),
        )
        moment = datetime(rng.choice([2024, 2025]), 1 + i % 12, 1 + i % 28, 10, tzinfo=CST)
        ids.append(h.certified(t, moment))
    for cid in rng.sample(ids, contracts * 6 // 10):
        region = rng.choice([None, "640205", "110105"])
        changes: dict = {"amount": f"{rng.randint(10_000, 9_000_000)}.00"}
        if region and h.terms[cid]["buyer"]["region"]:
            changes["buyer"] = dict(h.terms[cid]["buyer"], region=region)
        h.amend(cid, datetime(2025, 12, 1, tzinfo=CST), **changes)
    for cid in rng.sample(ids, contracts // 6):
        h.revoke(cid, datetime(2025, 12, 2, tzinfo=CST))
    h.unknown(datetime(2025, 12, 3, tzinfo=CST))
    for cid in rng.sample(ids, contracts // 4):
        h.amend(cid, datetime(2025, 12, 4, tzinfo=CST), amount=f"{rng.randint(10_000, 9_000_000)}.00")
    return h


async def replay(url: str, events, sizes: list[int], **sink_options) -> dict:
    database = Database(url)
    await asyncio.to_thread(migrate.upgrade, database)
    db = database.async_engine()
    try:
        sink = NotifyingSink(db, AwardProjection(Engine(default_rule_book())), lambda: None, **sink_options)
        i = k = 0
        while i < len(events):
            page = events[i : i + sizes[k % len(sizes)]]
            await sink.apply(page, page[-1].position)
            i += len(page)
            k += 1
        return await Queries(db).snapshot()
    finally:
        await db.dispose()


@pytest.mark.parametrize("seed", [1, 2])
async def test_postgresql_bulk_path_equals_sqlite_path_in_any_page_size(seed, tmp_path, make_pg_database):
    h = busy_history(seed)
    snapshots = [
        await replay(f"sqlite:///{tmp_path / 'pages-of-1.db'}", h.events, [1]),
        await replay(f"sqlite:///{tmp_path / 'big-pages.db'}", h.events, [1000]),
        await replay(make_pg_database(), h.events, [1000]),
        await replay(make_pg_database(), h.events, [7, 1, 250, 33]),
        # one batch cut into transactions of a few events: each decided while the one before commits (PostgreSQL),
        # or after it (SQLite), carrying the uncommitted one's contracts, awards and caps in memory
        await replay(make_pg_database(), h.events, [len(h.events)], chunk=7),
        await replay(make_pg_database(), h.events, [300, 41], chunk=3),
        await replay(f"sqlite:///{tmp_path / 'chunks.db'}", h.events, [len(h.events)], chunk=5),
    ]
    assert len(snapshots[0]["award_events"]) > 400 and snapshots[0]["skipped"]
    assert any(row[2] == "tcr.subsidy.award.clawed_back.v1" for row in snapshots[0]["award_events"])
    assert any(row[2] == "tcr.subsidy.award.adjusted.v1" for row in snapshots[0]["award_events"])
    for other in snapshots[1:]:
        assert other == snapshots[0]
    engine, state = Engine(default_rule_book()), Ledger()
    outs = []
    for e in h.events:
        if e.type in KNOWN_TYPES:
            outs.extend(engine.apply(state, registry_event(e)))
    assert [(r[0], r[1], r[2]) for r in snapshots[0]["award_events"]] == [
        (i, o.id, o.type) for i, o in enumerate(outs, start=1)
    ]


async def test_a_failed_commit_in_the_pipeline_drops_what_was_decided_after_it(make_pg_database):
    """Chunk N fails to commit while chunk N+1 is already decided on top of it (PostgreSQL, pipelined): the batch
    fails, the position stays at chunk N-1's last event, and the resumed catch-up (no state kept from the failed
    one) ends identical to a catch-up that never failed: nothing skipped, nothing applied twice."""
    h = busy_history(5, contracts=80)
    expected = await replay(make_pg_database(), h.events, [1000])
    url = make_pg_database()
    database = Database(url)
    await asyncio.to_thread(migrate.upgrade, database)
    db = database.async_engine()
    award_events = expected["award_events"]
    failing = award_events[len(award_events) // 2][6]  # the cause of an award event halfway through the feed
    try:
        async with db.begin() as conn:  # the database refuses that event's award rows: its chunk cannot commit
            await conn.execute(
                text(f"ALTER TABLE subsidy_award_events ADD CONSTRAINT refuse CHECK (cause_position <> {failing})")
            )
        committed: list[int] = []
        sink = NotifyingSink(db, AwardProjection(Engine(default_rule_book())), lambda: committed.append(1), chunk=9)
        with pytest.raises(Exception, match="refuse"):
            await sink.apply(h.events, h.events[-1].position)
        reached = await sink.position()
        assert committed and reached < failing and reached == h.events[9 * len(committed) - 1].position
        async with db.begin() as conn:
            await conn.execute(text("ALTER TABLE subsidy_award_events DROP CONSTRAINT refuse"))
        rest = [e for e in h.events if e.position > reached]
        await sink.apply(rest, h.events[-1].position)
        assert await Queries(db).snapshot() == expected
    finally:
        await db.dispose()


class FakeSource:
    """Pages of a fixed feed; `head` as the publisher would report it."""

    def __init__(self, events, page_size: int) -> None:
        self.events, self.page_size = events, page_size

    async def follow(self, after: int):
        while True:
            chunk = [e for e in self.events if e.position > after][: self.page_size]
            head = self.events[-1].position
            if not chunk:
                yield FeedPage(events=[], next_after=after, head=head)
                return
            after = chunk[-1].position
            yield FeedPage(events=chunk, next_after=after, head=head)


async def test_batching_merges_pages_only_while_catching_up():
    h = busy_history(3, contracts=20)
    source = BatchingSource(FakeSource(h.events, page_size=3), max_pages=4)
    pages = []
    async for page in source.follow(0):
        pages.append(page)
    # up to 4 pages of 3 per transaction while behind; the last (caught-up) page is yielded as it comes
    assert [len(p.events) for p in pages[:-2]] == [12] * (len(pages) - 2)
    assert [e.position for p in pages for e in p.events] == [e.position for e in h.events]
    assert all(p.next_after == p.events[-1].position for p in pages if p.events)
    assert pages[-2].next_after == pages[-2].head == h.events[-1].position
    assert pages[-1].events == []


async def test_batched_catch_up_equals_page_by_page(tmp_path):
    h = busy_history(4, contracts=60)
    expected = await replay(f"sqlite:///{tmp_path / 'paged.db'}", h.events, [5])
    database = Database(f"sqlite:///{tmp_path / 'batched.db'}")
    await asyncio.to_thread(migrate.upgrade, database)
    db = database.async_engine()
    try:
        sink = NotifyingSink(db, AwardProjection(Engine(default_rule_book())), lambda: None)
        async for page in BatchingSource(FakeSource(h.events, page_size=5), max_pages=7).follow(0):
            if page.next_after > await sink.position():
                await sink.apply(page.events, page.next_after)
        assert await Queries(db).snapshot() == expected
    finally:
        await db.dispose()


# -- the registry's public mapping of stored terms ------------------------------------------------------------
def _records():
    base = terms(
        seller=party("university", 2, "640105"),
        buyer=party("enterprise", 1),
        intermediary=party("social_organisation", 3),
        result_id="ZL1",
    )
    person = {
        "name": "Zhang San",
        "kind": "individual",
        "credit_code": None,
        "region": "640104",
        "country": None,
        "id_number": "640104199001011234",
    }
    yield base
    yield dict(base, intermediary=None)
    yield dict(base, intermediary={})
    yield dict(base, buyer=person)
    yield dict(base, seller={"name": "Foreign 1", "kind": "foreign", "country": "DE"})  # absent keys: None
    for amount in ("100", "1E+5", "0100.00", "12.345", "12.355", "0.00", "7.1", "-5.00", "99999999999999999.99"):
        yield dict(base, amount=amount, technology_amount=amount)
    yield dict(base, signed_on="20250102")
    yield {k: v for k, v in base.items() if k not in ("subcategory", "result_id")}


@pytest.mark.parametrize("record", list(_records()))
def test_registry_fast_public_terms_equal_the_domain_mapping(record):
    import json

    from tcr_registry.adapters.feeds.public_events import _terms
    from tcr_registry.domain.terms import Terms

    assert json.dumps(_terms(record, False)) == json.dumps(Terms.from_record(record).public())


@pytest.mark.parametrize(
    "record",
    [
        {"title": "x"},
        dict(terms(), seller={"name": "a", "kind": "enterprise", "colour": "red"}),
        dict(terms(), buyer={"kind": "enterprise"}),
        dict(terms(), amount="lots"),
    ],
)
def test_registry_fast_public_terms_fail_as_the_domain_mapping_does(record):
    from tcr_registry.adapters.feeds.public_events import _terms
    from tcr_registry.domain.terms import Terms

    with pytest.raises(Exception) as expected:
        Terms.from_record(record).public()
    with pytest.raises(type(expected.value)):
        _terms(record, False)


def test_registry_event_ids_are_uuid5():
    import uuid

    from tcr_registry.adapters.feeds.public_events import _NAMESPACE, event_id

    rng = random.Random(5)
    for _ in range(2000):
        originator = uuid.UUID(int=rng.getrandbits(128))
        version = rng.randint(1, 10**9)
        assert event_id(originator, version) == str(uuid.uuid5(_NAMESPACE, f"{originator}/{version}"))
