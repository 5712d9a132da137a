"""The projection on SQLite and PostgreSQL: one transaction per page with its position, exactly once, the
award feed, the ledger and a rebuild that equals the live state."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

from tcr_shared.language.events.subsidy import SUBSIDY_EVENT_TYPES
from tcr_shared.platform.database import Database
from tcr_subsidy.adapters.feeds import NotifyingSink
from tcr_subsidy.adapters.persistence import migrate
from tcr_subsidy.adapters.persistence.queries import Queries
from tcr_subsidy.adapters.persistence.store import wipe
from tcr_subsidy.adapters.rule_files import default_rule_book
from tcr_subsidy.application.projection import AwardProjection
from tcr_subsidy.domain.decision import Engine
from tests.subsidy.history import CST, History, party, terms


@pytest.fixture
async def store(database_url):
    database = Database(database_url)
    await asyncio.to_thread(migrate.upgrade, database)
    await asyncio.to_thread(migrate.upgrade, database)  # idempotent: a restart runs it again
    db = database.async_engine()
    rings: list[int] = []
    projection = AwardProjection(Engine(default_rule_book()))
    sink = NotifyingSink(db, projection, lambda: rings.append(1))
    yield sink, Queries(db), db, rings
    await db.dispose()


def worked_example() -> tuple[History, dict]:
    h = History()
    a = party("enterprise", 1)
    ids = {}
    for name, amount, day in (("c1", "9000000.00", 1), ("c2", "6000000.00", 2), ("c3", "2000000.00", 3)):
        ids[name] = h.certified(
            terms(
                amount=amount,
                technology_amount="100000.00",
                buyer=a,
                seller=party("university", 2, "640105"),
                result_id="ZL1",
            ),
            datetime(2025, 3, day, 10, tzinfo=CST),
        )
    h.revoke(ids["c2"], datetime(2025, 4, 1, tzinfo=CST))
    ids["c4"] = h.certified(
        terms(
            amount="9000000.00",
            technology_amount="100000.00",
            buyer=a,
            seller=party("university", 2, "640105"),
            result_id="ZL1",
        ),
        datetime(2025, 5, 1, tzinfo=CST),
    )
    h.unknown(datetime(2025, 5, 2, tzinfo=CST))
    return h, ids


async def test_pages_apply_exactly_once_with_their_position(store):
    sink, queries, _db, rings = store
    h, ids = worked_example()
    await sink.apply(h.events[:3], 3)
    assert await sink.position() == 3 and rings == [1]
    before = await queries.snapshot()
    with pytest.raises(RuntimeError, match="refusing"):
        await sink.apply(h.events[:3], 3)  # a second follower, or a retried page: refused as a whole
    assert await queries.snapshot() == before
    await sink.apply(h.events[3:], h.events[-1].position)
    body = await queries.contract_awards(ids["c3"])
    assert [(a["programme"], a["award"], a["status"]) for a in body["awards"]] == [
        ("import", "500000.00", "capped"),
        ("export_institution", "5000.00", "full"),
    ]
    skipped = await queries.skipped()
    assert [(s["position"], s["type"]) for s in skipped] == [(h.events[-1].position, h.events[-1].type)]
    assert await sink.position() == h.events[-1].position


async def test_ledger_and_award_feed(store):
    sink, queries, _db, _ = store
    h, ids = worked_example()
    await sink.apply(h.events, h.events[-1].position)
    ledger = await queries.ledger(party("enterprise", 1)["credit_code"], 2025)
    (imp,) = ledger["programmes"]
    assert (imp["cap"], imp["awarded"], imp["remaining"]) == ("5000000.00", "5000000.00", "0.00")
    lines = {line["contract_id"]: line for line in imp["awards"]}
    assert lines[ids["c2"]]["status"] == "clawed_back" and lines[ids["c2"]]["award"] == "0.00"
    assert lines[ids["c2"]]["adjustments"][0]["delta"] == "-1800000.00"
    assert lines[ids["c4"]]["award"] == "1800000.00"
    uni = await queries.ledger(party("university", 2, "640105")["credit_code"], 2031)
    (inst,) = uni["programmes"]  # per project over all years, whatever the year asked
    assert [(p["result_id"], p["awarded"], p["remaining"]) for p in inst["projects"]] == [
        ("ZL1", "15000.00", "985000.00")
    ]
    assert await queries.ledger(party("enterprise", 99)["credit_code"], 2025) is None
    page1 = await queries.read(0, 3)
    page2 = await queries.read(page1.next_after, 100)
    events = page1.events + page2.events
    assert [e.position for e in events] == list(range(1, 11)) and page2.head == 10
    assert events[6].type == "tcr.subsidy.award.clawed_back.v1" and events[6].source == "/tcr/subsidy"
    assert (await queries.read(10, 5)).events == []
    for e in events:  # exactly the public schema of shared/events/subsidy.py, which reporting and partners read
        model = SUBSIDY_EVENT_TYPES[e.type]
        model.model_validate(e.data)
        assert set(e.data) == set(model.model_fields)


async def test_rebuild_from_zero_in_other_page_sizes_is_identical(store):
    sink, queries, db, _ = store
    h, _ = worked_example()
    for i in range(0, len(h.events), 2):
        page = h.events[i : i + 2]
        await sink.apply(page, page[-1].position)
    live = await queries.snapshot()
    await wipe(db)
    assert await sink.position() == 0
    await sink.apply(h.events, h.events[-1].position)
    assert await queries.snapshot() == live


async def test_an_amendment_that_makes_a_new_beneficiary_eligible_loads_its_cap(store):
    """The amended event's own policy_year may be null: the cap must be found through the contract's year."""
    sink, queries, _db, _ = store
    h = History()
    outside = party("enterprise", 61, region="110105")
    earlier = h.certified(
        terms(amount="16000000.00", buyer=party("enterprise", 61, region="640104"), seller=party("foreign")),
        datetime(2025, 3, 1, tzinfo=CST),
    )
    c = h.certified(
        terms(amount="1000000.00", buyer=outside, seller=party("foreign")), datetime(2025, 3, 2, tzinfo=CST)
    )
    await sink.apply(h.events, h.events[-1].position)
    assert (await queries.contract_awards(c))["awards"] == []
    amended = h.amend(c, datetime(2025, 4, 1, tzinfo=CST), buyer=dict(outside, region="640104"))
    assert amended.data["policy_year"] is None
    await sink.apply([amended], amended.position)
    (award,) = (await queries.contract_awards(c))["awards"]
    assert (award["programme"], award["award"], award["status"]) == ("import", "200000.00", "capped")
    assert (await queries.contract_awards(earlier))["awards"][0]["award"] == "4800000.00"


def test_migrations_match_the_tables(database_url):
    """The alembic migration creates exactly the tables the code uses (no drift between tables.py and 0001)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import create_engine

    from tcr_subsidy.adapters.persistence.tables import metadata

    database = Database(database_url)
    migrate.upgrade(database)
    engine = create_engine(database.sync_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"version_table": "subsidy_alembic_version"})
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()
