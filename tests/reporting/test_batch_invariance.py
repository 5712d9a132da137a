"""Where pages and batches are cut never changes the figures (SQLite and PostgreSQL): random contract histories
(certifications, amendments that move money between counties, prefectures and outside Ningxia, revocations,
submissions, rejections) applied one event per page, in random page sizes, and merged into random batches of pages
(as the follower's BatchingSource and `rebuild` do), give the same stored figures and records, and those equal a
reference summed straight from each contract's final record."""

from __future__ import annotations

import asyncio
from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from tcr_reporting.adapters.persistence.migrate import upgrade
from tcr_reporting.adapters.persistence.projection import registry_sink, reset
from tcr_reporting.adapters.persistence.tables import counted_contracts, figures
from tcr_reporting.domain.figures import INFLOW, OUTFLOW, areas_of, counted_after
from tcr_shared.platform.database import Database
from tests.reporting.builders import Feed, terms

KEYS = ["a", "b", "c", "d", "e"]
# counties of two prefectures, a prefecture and the region code (old events), outside Ningxia, no region
REGIONS = ["640104", "640181", "640302", "640205", "640100", "640000", "110108", None]
CATEGORIES = ["licence", "transfer", "service", "development", "consulting"]

money = st.builds(lambda y, f: f"{y}.{f:02d}", st.integers(0, 9_000_000), st.integers(0, 99))
contract_terms = st.builds(
    lambda s, b, amount, category: terms(s, b, amount, amount, category),
    st.sampled_from(REGIONS),
    st.sampled_from(REGIONS),
    money,
    st.sampled_from(CATEGORIES),
)
operations = st.lists(
    st.tuples(
        st.sampled_from(["certify", "amend", "revoke", "submit", "reject"]),
        st.sampled_from(KEYS),
        contract_terms,
        st.integers(2023, 2025),
    ),
    min_size=1,
    max_size=40,
)


def history(ops) -> Feed:
    feed, last = Feed(), {}
    for op, key, t, year in ops:
        if op == "certify":
            feed.certify(key, t, year)
        elif op == "amend" and key in last:
            feed.amend(key, last[key], t, year)
        elif op == "revoke" and key in last:
            feed.revoke(key, last[key], year)
        elif op == "submit":
            feed.submit(key, t)
        elif op == "reject":
            feed.reject(key, t)
        last[key] = t
    return feed


def reference(feed: Feed) -> dict[tuple, tuple[int, int, int]]:
    """Figures summed from each contract's final record (no deltas): the sums the projection must keep."""
    final: dict = {}
    for event in feed.events:
        cid = event.data["contract_id"]
        final[cid] = counted_after(event.type, event.data, final.get(cid))
    sums: Counter = Counter()
    for record in final.values():
        if record is None:
            continue
        for side, code in ((OUTFLOW, record.seller_region), (INFLOW, record.buyer_region)):
            for area in areas_of(code):
                key = (area, record.year, side, record.category)
                sums[(*key, "count")] += 1
                sums[(*key, "amount")] += record.amount_fen
                sums[(*key, "technology")] += record.technology_amount_fen
    keys = {k[:4] for k in sums}
    out = {k: (sums[(*k, "count")], sums[(*k, "amount")], sums[(*k, "technology")]) for k in keys}
    return {k: v for k, v in out.items() if any(v)}


async def stored(engine) -> tuple[dict, dict]:
    async with engine.connect() as connection:
        f = figures.c
        rows = await connection.execute(
            select(f.region, f.year, f.side, f.category, f.count, f.amount_fen, f.technology_amount_fen)
        )
        sums = {tuple(r[:4]): tuple(r[4:]) for r in rows if any(r[4:])}
        records = {r[0]: tuple(r[1:]) for r in await connection.execute(select(counted_contracts))}
    return sums, records


async def apply_cut(engine, feed: Feed, sizes: list[int], batch_pages: list[int]) -> tuple[dict, dict]:
    """Pages of the given sizes (cycled), merged into batches of the given numbers of pages (cycled), each batch
    applied with the position of its last page, as BatchingSource hands them to the sink."""
    await reset(engine)
    sink = registry_sink(engine)
    events, i, n = feed.events, 0, 0
    pages = []
    while i < len(events):
        pages.append(events[i : i + sizes[n % len(sizes)]])
        i += len(pages[-1])
        n += 1
    j = n = 0
    while j < len(pages):
        batch = pages[j : j + batch_pages[n % len(batch_pages)]]
        await sink.apply([e for page in batch for e in page], batch[-1][-1].position)
        j += len(batch)
        n += 1
    assert await sink.position() == feed.position
    return await stored(engine)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(
    ops=operations,
    sizes=st.lists(st.integers(1, 7), min_size=1, max_size=4),
    batch_pages=st.lists(st.integers(1, 5), min_size=1, max_size=3),
)
def test_figures_are_identical_whatever_the_page_and_batch_size(database_url, ops, sizes, batch_pages) -> None:
    feed = history(ops)

    async def compare() -> None:
        database = Database(database_url)
        await asyncio.to_thread(upgrade, database)
        engine = database.async_engine()
        try:
            one_by_one = await apply_cut(engine, feed, [1], [1])
            all_at_once = await apply_cut(engine, feed, [len(feed.events)], [1])
            cut = await apply_cut(engine, feed, sizes, batch_pages)
        finally:
            await engine.dispose()
        assert one_by_one[0] == reference(feed)
        assert cut == one_by_one == all_at_once

    asyncio.run(compare())
