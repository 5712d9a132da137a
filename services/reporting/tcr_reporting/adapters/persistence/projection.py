"""Applying a page of feed events to the figures, inside the transaction `SqlProjectionSink` opens (which
also records the position reached): a page is counted exactly once, or not at all."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tcr_reporting.adapters.persistence.tables import (
    FEED_REGISTRY,
    FEED_SUBSIDY,
    counted_awards,
    counted_contracts,
    feed_tracking,
    figures,
    metadata,
)
from tcr_reporting.domain.figures import CountedAward, CountedContract, FigureDeltas, counted_after
from tcr_shared.feeds.projection_store import SqlProjectionSink
from tcr_shared.language.events.envelope import FeedEvent
from tcr_shared.language.vocabulary import AwardEventType, RegistryEventType
from tcr_shared.platform.database import (
    is_postgres,
    pg_columns,
    pg_delete,
    pg_driver,
    pg_upsert,
    pg_upsert_sql,
    rows_in,
)

_CHUNK = 500  # ids per IN (...) list


def _insert(session: AsyncSession, table):
    return (postgresql.insert if is_postgres(session) else sqlite.insert)(table)


def _contract_id(event: FeedEvent) -> str:
    return str(event.data.get("contract_id") or event.subject)


async def _load_counted(session: AsyncSession, ids: list[str]) -> dict[str, CountedContract]:
    """What each of these contracts counts for now (absent: nowhere), in one statement on PostgreSQL."""
    rows = await rows_in(session, counted_contracts.c.contract_id, ids)
    return {
        row.contract_id: CountedContract(
            row.year, row.category, row.amount_fen, row.technology_amount_fen, row.seller_region, row.buyer_region
        )
        for row in rows
    }


_PG_FORGET_CONTRACTS = pg_delete(counted_contracts, "contract_id")


# PostgreSQL: one statement per batch over arrays (unnest), instead of one upsert per row; figures add up. The
# figures and contract records go straight to the asyncpg connection (positional arrays, COPY): a batch carries
# thousands of rows, and SQLAlchemy's processing of array parameters cost more than the statements.
_PG_FIGURES = pg_upsert_sql(figures, add=("count", "amount_fen", "technology_amount_fen"))
_PG_CONTRACTS = pg_upsert_sql(counted_contracts)
_PG_AWARDS = pg_upsert(counted_awards)
_FIGURE_COLUMNS = [c.name for c in figures.columns]
_CONTRACT_COLUMNS = [c.name for c in counted_contracts.columns]
# A record row is (contract_id, *CountedContract, position): the table must keep that column order.
if _CONTRACT_COLUMNS != ["contract_id", *CountedContract._fields, "position"]:
    raise ImportError(f"counted_contracts columns {_CONTRACT_COLUMNS} do not follow CountedContract's fields")


def _figure_rows(deltas: FigureDeltas) -> list[tuple]:
    """(region, year, side, category, count, amount_fen, technology_amount_fen): the figures table's order."""
    return [(*key, count, amount, technology) for key, count, amount, technology in deltas.items()]


async def write_deltas(session: AsyncSession, deltas: FigureDeltas) -> None:
    rows = _figure_rows(deltas)
    if not rows:
        return
    if is_postgres(session):
        driver = await pg_driver(session)
        await driver.execute(_PG_FIGURES, *map(list, zip(*rows, strict=True)))
        return
    stmt = _insert(session, figures)
    stmt = stmt.on_conflict_do_update(
        index_elements=["region", "year", "side", "category"],
        set_={
            "count": figures.c.count + stmt.excluded.count,
            "amount_fen": figures.c.amount_fen + stmt.excluded.amount_fen,
            "technology_amount_fen": figures.c.technology_amount_fen + stmt.excluded.technology_amount_fen,
        },
    )
    await session.execute(stmt, [dict(zip(_FIGURE_COLUMNS, row, strict=True)) for row in rows])


async def apply_registry_page(session: AsyncSession, events: Sequence[FeedEvent]) -> None:
    """Apply a page, or several pages merged into one batch (the follower's BatchingSource, a rebuild): the
    counted records of every contract in it are read in one statement, the events are folded in memory in
    feed order, and each changed table is written once (set-based). Where the pages are cut changes nothing:
    the figures are sums, and each contract's record is carried from event to event inside the batch."""
    # An event without a status cannot change what a contract counts for (counted_after keeps `before`):
    # skipped before any lookup.
    prefix = RegistryEventType.PREFIX
    contract_events = [
        (_contract_id(e), e) for e in events if e.type.startswith(prefix) and e.data.get("status") is not None
    ]
    if not contract_events:
        return
    stored = await _load_counted(session, sorted({cid for cid, _ in contract_events}))
    state: dict[str, CountedContract | None] = dict(stored)
    last_position: dict[str, int] = {}
    deltas = FigureDeltas()
    for cid, event in contract_events:
        before = state.get(cid)
        after = counted_after(event.type, event.data, before)
        if after != before:
            deltas.move(before, after)
            state[cid] = after
            last_position[cid] = event.position
    await _write_counted(session, stored, state, last_position)
    await write_deltas(session, deltas)


async def _write_counted(
    session: AsyncSession,
    stored: dict[str, CountedContract],
    state: dict[str, CountedContract | None],
    last_position: dict[str, int],
) -> None:
    """The changed contracts' records, once per batch: deleted where a contract no longer counts, written where
    it counts (with the position of the last event that changed it). On PostgreSQL, contracts that had no record
    (read in this transaction; one writer holds the projection lease) are COPYed, the others upserted."""
    changed = sorted(last_position)
    removed = [cid for cid in changed if state[cid] is None and cid in stored]
    kept = [(cid, *rec, last_position[cid]) for cid in changed if (rec := state[cid]) is not None]
    if is_postgres(session):
        driver = await pg_driver(session)
        if removed:
            await session.execute(_PG_FORGET_CONTRACTS, {"keys": removed})
        new = [row for row in kept if row[0] not in stored]
        updated = [row for row in kept if row[0] in stored]
        if new:
            await driver.copy_records_to_table(counted_contracts.name, records=new, columns=_CONTRACT_COLUMNS)
        if updated:
            await driver.execute(_PG_CONTRACTS, *map(list, zip(*updated, strict=True)))
        return
    for start in range(0, len(removed), _CHUNK):
        await session.execute(
            delete(counted_contracts).where(counted_contracts.c.contract_id.in_(removed[start : start + _CHUNK]))
        )
    if kept:
        stmt = _insert(session, counted_contracts)
        stmt = stmt.on_conflict_do_update(
            index_elements=["contract_id"],
            set_={name: stmt.excluded[name] for name in _COUNTED_FIELDS},
        )
        await session.execute(stmt, [dict(zip(_CONTRACT_COLUMNS, row, strict=True)) for row in kept])


_COUNTED_FIELDS = (
    "year",
    "category",
    "amount_fen",
    "technology_amount_fen",
    "seller_region",
    "buyer_region",
    "position",
)


async def apply_subsidy_page(session: AsyncSession, events: Sequence[FeedEvent]) -> None:
    award_events = [e for e in events if e.type in AwardEventType.ALL]
    if not award_events:
        return
    ids = sorted({str(e.data["award_id"]) for e in award_events})
    state: dict[str, CountedAward | None] = dict(await _load_awards(session, ids))
    deltas = FigureDeltas()
    for event in award_events:
        award_id = str(event.data["award_id"])
        after = CountedAward.from_event(event.data)
        deltas.move_award(state.get(award_id), after)
        state[award_id] = after
    rows = [
        {"award_id": k, "region": v.region, "year": v.year, "programme": v.programme, "award_fen": v.award_fen}
        for k, v in sorted(state.items())
        if v is not None
    ]
    await _write_awards(session, rows)
    await write_deltas(session, deltas)


async def _write_awards(session: AsyncSession, rows: list[dict]) -> None:
    if is_postgres(session):
        await session.execute(_PG_AWARDS, pg_columns(counted_awards, rows))
        return
    stmt = _insert(session, counted_awards)
    stmt = stmt.on_conflict_do_update(
        index_elements=["award_id"],
        set_={name: stmt.excluded[name] for name in ("region", "year", "programme", "award_fen")},
    )
    await session.execute(stmt, rows)


async def _load_awards(session: AsyncSession, ids: list[str]) -> dict[str, CountedAward]:
    rows = await rows_in(session, counted_awards.c.award_id, ids)
    return {row.award_id: CountedAward(row.region, row.year, row.programme, row.award_fen) for row in rows}


def registry_sink(engine: AsyncEngine) -> SqlProjectionSink:
    return SqlProjectionSink(engine, feed_tracking, FEED_REGISTRY, apply_registry_page)


def subsidy_sink(engine: AsyncEngine) -> SqlProjectionSink:
    return SqlProjectionSink(engine, feed_tracking, FEED_SUBSIDY, apply_subsidy_page)


async def reset(engine: AsyncEngine) -> None:
    """Forget every figure, every per-contract and per-award record and every position (before a rebuild from
    zero), in one transaction. Every table of the projection goes: a record left behind (such as an award's)
    would make its replayed event look like no change, and its figures would be lost."""
    async with engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            await connection.execute(delete(table))
