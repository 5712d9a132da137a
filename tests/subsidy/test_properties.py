"""Property tests: random histories of submit, certify, amend and revoke over a few beneficiaries and years.
No cap is ever exceeded, every award equals a plain reference computation of the spec, and replaying through the
database in random page sizes (a rebuild) gives identical results."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from datetime import datetime
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcr_shared.platform.database import Database
from tcr_subsidy.adapters.feeds import NotifyingSink
from tcr_subsidy.adapters.persistence import migrate
from tcr_subsidy.adapters.persistence.queries import Queries
from tcr_subsidy.adapters.persistence.store import wipe
from tcr_subsidy.adapters.rule_files import default_rule_book
from tcr_subsidy.application.projection import AwardProjection, registry_event
from tcr_subsidy.domain.decision import Engine
from tcr_subsidy.domain.ledger import Ledger
from tests.subsidy.history import CAPS, CST, History, party, reference, terms

BUYERS = [party("enterprise", 101), party("enterprise", 102), party("university", 103), party("foreign")]
SELLERS = [
    party("enterprise", 101),
    party("university", 104),
    party("research_institute", 105),
    party("enterprise", 106, region="320102"),
]
BROKERS = [None, party("social_organisation", 107), party("enterprise", 102), party("individual")]
money = st.integers(min_value=1, max_value=3_000_000_000).map(lambda fen: f"{Decimal(fen).scaleb(-2):.2f}")
when = st.builds(
    lambda y, d: datetime(y, 1, 1, 0, 30, tzinfo=CST).replace(month=1 + d % 12, day=1 + d % 28),
    st.sampled_from([2024, 2025, 2026]),
    st.integers(0, 400),
)
certify = st.tuples(
    st.just("certify"),
    st.integers(0, 3),
    st.integers(0, 3),
    st.integers(0, 3),
    money,
    money,
    st.sampled_from(["licence", "transfer", "development", "consulting"]),
    st.sampled_from([None, "R1", "R2"]),
    when,
)
amend = st.tuples(
    st.just("amend"),
    st.integers(0, 50),
    money,
    st.sampled_from(["licence", "service", None]),
    st.sampled_from([None, "640205", "110105"]),
)
revoke = st.tuples(st.just("revoke"), st.integers(0, 50))
submit_only = st.tuples(st.just("submit"), money)
operations = st.lists(st.one_of(certify, certify, amend, revoke, submit_only), min_size=1, max_size=40)


def build(ops) -> History:
    h = History()
    ids: list[str] = []
    clock = datetime(2024, 1, 1, tzinfo=CST)
    for op in ops:
        if op[0] == "certify":
            _, b, s, i, amount, tech, category, result, moment = op
            tech = min(Decimal(amount), Decimal(tech))
            if SELLERS[s]["credit_code"] == BUYERS[b]["credit_code"]:
                s = (s + 1) % len(SELLERS)
            t = terms(
                amount=amount,
                technology_amount=f"{tech:.2f}",
                category=category,
                buyer=BUYERS[b],
                seller=SELLERS[s],
                intermediary=BROKERS[i],
                result_id=result,
            )
            ids.append(h.certified(t, moment))
            clock = max(clock, moment)
        elif op[0] == "amend" and ids:
            _, k, amount, category, region = op
            cid = ids[k % len(ids)]
            changes: dict = {"amount": amount}
            if category:
                changes["category"] = category
            if region:
                buyer = dict(h.terms[cid]["buyer"], region=region) if h.terms[cid]["buyer"]["region"] else None
                if buyer:
                    changes["buyer"] = buyer
            h.amend(cid, clock, **changes)
        elif op[0] == "revoke" and ids:
            h.revoke(ids[op[1] % len(ids)], clock)
        elif op[0] == "submit":
            h.submit(terms(amount=op[1]))
    return h


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations)
def test_caps_hold_and_awards_equal_the_reference(ops):
    h = build(ops)
    engine, state = Engine(default_rule_book()), Ledger()
    for event in h.events:
        for out in engine.apply(state, registry_event(event)):
            assert Decimal(out.data["cap_used_after"]) <= Decimal(out.data["cap"])
            assert Decimal(out.data["award"]) <= Decimal(out.data["entitlement"])
            assert Decimal(out.data["award"]) >= 0
        for usage in state.caps.values():  # after every event, not only at the end
            assert Decimal("0.00") <= usage.used <= CAPS[usage.programme]
    per_cap: dict[str, Decimal] = defaultdict(Decimal)
    for a in state.awards.values():
        per_cap[a.cap_key] += a.award
    assert {k: v for k, v in per_cap.items() if v} == {k: u.used for k, u in state.caps.items() if u.used}
    assert {(a.contract_id, a.programme, a.beneficiary): a.award for a in state.awards.values()} == reference(h.events)
    # a replay from zero gives the same decisions, event ids included
    again, replayed = Ledger(), []
    for event in h.events:
        replayed.extend(engine.apply(again, registry_event(event)))
    first, fresh = Ledger(), []
    for event in h.events:
        fresh.extend(engine.apply(first, registry_event(event)))
    assert replayed == fresh


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(ops=operations, sizes=st.lists(st.integers(1, 9), min_size=1, max_size=5))
def test_database_replay_in_any_page_size_equals_the_engine(tmp_path_factory, ops, sizes):
    h = build(ops)
    url = f"sqlite:///{tmp_path_factory.mktemp('prop') / 'subsidy.db'}"
    database = Database(url)
    migrate.upgrade(database)

    async def run() -> None:
        db = database.async_engine()
        try:
            projection = AwardProjection(Engine(default_rule_book()))
            sink = NotifyingSink(db, projection, lambda: None)
            queries = Queries(db)
            snapshots = []
            for size in (sizes[0], 1000):
                await wipe(db)
                events, i = h.events, 0
                while i < len(events):
                    step = sizes[(i // 3) % len(sizes)] if size != 1000 else size
                    page = events[i : i + step]
                    await sink.apply(page, page[-1].position)
                    i += step
                snapshots.append(await queries.snapshot())
            assert snapshots[0] == snapshots[1]
            engine, state = Engine(default_rule_book()), Ledger()
            outs = [o for e in h.events for o in engine.apply(state, registry_event(e))]
            assert [(r[1], r[2]) for r in snapshots[0]["award_events"]] == [(o.id, o.type) for o in outs]
            assert [r[0] for r in snapshots[0]["award_events"]] == list(range(1, len(outs) + 1))
        finally:
            await db.dispose()

    asyncio.run(run())


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(ops=operations, batches=st.lists(st.integers(1, 12), min_size=1, max_size=4), chunk=st.integers(1, 6))
def test_postgresql_catch_up_in_any_batch_size_equals_the_engine(make_pg_database, ops, batches, chunk):
    """PostgreSQL's catch-up path (COPY for new rows, one upsert per table for changed ones, the award feed by COPY
    after its head) in batches of any size gives the rows one event per transaction gives, and the award feed the
    engine decides in memory, event for event and byte for byte; so does a batch cut into transactions of `chunk`
    events, each decided while the one before commits."""
    h = build(ops)
    database = Database(make_pg_database("tcr_batches"))
    migrate.upgrade(database)

    async def replay_in(db, sizes: list[int], chunk: int = 1000) -> dict:
        await wipe(db)
        sink = NotifyingSink(db, AwardProjection(Engine(default_rule_book())), lambda: None, chunk=chunk)
        events, i, k = h.events, 0, 0
        while i < len(events):
            batch = events[i : i + sizes[k % len(sizes)]]
            await sink.apply(batch, batch[-1].position)
            i, k = i + len(batch), k + 1
        return await Queries(db).snapshot()

    async def run() -> None:
        db = database.async_engine()
        try:
            one_by_one = await replay_in(db, [1])
            assert await replay_in(db, batches) == one_by_one
            assert await replay_in(db, [len(h.events)]) == one_by_one
            assert await replay_in(db, [len(h.events)], chunk) == one_by_one
            assert await replay_in(db, batches, chunk) == one_by_one
        finally:
            await db.dispose()
        engine, state = Engine(default_rule_book()), Ledger()
        outs = [o for e in h.events for o in engine.apply(state, registry_event(e))]
        assert [r[0:3] for r in one_by_one["award_events"]] == [(i, o.id, o.type) for i, o in enumerate(outs, 1)]
        assert [json.loads(r[-1]) for r in one_by_one["award_events"]] == [o.data for o in outs]

    asyncio.run(run())
