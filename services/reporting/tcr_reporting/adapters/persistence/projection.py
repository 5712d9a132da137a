"""Applying a page of feed events to the figures, inside the transaction `SqlProjectionSink` opens (which
also records the position reached): a page is counted exactly once, or not at all."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select
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
from tcr_shared.platform.database import is_postgres, pg_columns, pg_upsert

_CHUNK = 500  # ids per IN (...) list


def _insert(session: AsyncSession, table):
    return (postgresql.insert if is_postgres(session) else sqlite.insert)(table)


def _contract_id(event: FeedEvent) -> str:
    return str(event.data.get("contract_id") or event.subject)


async def _load_counted(session: AsyncSession, ids: list[str]) -> dict[str, CountedContract]:
    found: dict[str, CountedContract] = {}
    c = counted_contracts.c
    for start in range(0, len(ids), _CHUNK):
        rows = await session.execute(
            select(
                c.contract_id,
                c.year,
                c.category,
                c.amount_fen,
                c.technology_amount_fen,
                c.seller_region,
                c.buyer_region,
            ).where(c.contract_id.in_(ids[start : start + _CHUNK]))
        )
        for row in rows:
            found[row.contract_id] = CountedContract(
                row.year, row.category, row.amount_fen, row.technology_amount_fen, row.seller_region, row.buyer_region
            )
    return found


# PostgreSQL: one statement per page over arrays (unnest), instead of one upsert per row; figures add up.
_PG_FIGURES = pg_upsert(figures, add=("count", "amount_fen", "technology_amount_fen"))
_PG_CONTRACTS = pg_upsert(counted_contracts)
_PG_AWARDS = pg_upsert(counted_awards)


def _figure_rows(deltas: FigureDeltas) -> list[dict]:
    return [
        {
            "region": key[0],
            "year": key[1],
            "side": key[2],
            "category": key[3],
            "count": count,
            "amount_fen": amount,
            "technology_amount_fen": technology,
        }
        for key, count, amount, technology in deltas.items()
    ]


async def write_deltas(session: AsyncSession, deltas: FigureDeltas) -> None:
    rows = _figure_rows(deltas)
    if not rows:
        return
    if is_postgres(session):
        await session.execute(_PG_FIGURES, pg_columns(figures, rows))
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
    await session.execute(stmt, rows)


async def apply_registry_page(session: AsyncSession, events: Sequence[FeedEvent]) -> None:
    contract_events = [e for e in events if e.type.startswith(RegistryEventType.PREFIX)]
    if not contract_events:
        return
    ids = sorted({_contract_id(e) for e in contract_events})
    stored = await _load_counted(session, ids)
    state: dict[str, CountedContract | None] = dict(stored)
    last_position: dict[str, int] = {}
    deltas = FigureDeltas()
    for event in contract_events:
        cid = _contract_id(event)
        before = state.get(cid)
        after = counted_after(event.type, event.data, before)
        if after != before:
            deltas.move(before, after)
            state[cid] = after
            last_position[cid] = event.position

    removed = [cid for cid in last_position if state[cid] is None and cid in stored]
    kept = [
        {
            "contract_id": cid,
            "year": rec.year,
            "category": rec.category,
            "amount_fen": rec.amount_fen,
            "technology_amount_fen": rec.technology_amount_fen,
            "seller_region": rec.seller_region,
            "buyer_region": rec.buyer_region,
            "position": last_position[cid],
        }
        for cid in sorted(last_position)
        if (rec := state[cid]) is not None
    ]
    for start in range(0, len(removed), _CHUNK):
        await session.execute(
            delete(counted_contracts).where(counted_contracts.c.contract_id.in_(removed[start : start + _CHUNK]))
        )
    if kept and is_postgres(session):
        await session.execute(_PG_CONTRACTS, pg_columns(counted_contracts, kept))
    elif kept:
        stmt = _insert(session, counted_contracts)
        stmt = stmt.on_conflict_do_update(
            index_elements=["contract_id"],
            set_={
                name: stmt.excluded[name]
                for name in (
                    "year",
                    "category",
                    "amount_fen",
                    "technology_amount_fen",
                    "seller_region",
                    "buyer_region",
                    "position",
                )
            },
        )
        await session.execute(stmt, kept)
    await write_deltas(session, deltas)


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
    found: dict[str, CountedAward] = {}
    c = counted_awards.c
    for start in range(0, len(ids), _CHUNK):
        rows = await session.execute(
            select(c.award_id, c.region, c.year, c.programme, c.award_fen).where(
                c.award_id.in_(ids[start : start + _CHUNK])
            )
        )
        for row in rows:
            found[row.award_id] = CountedAward(row.region, row.year, row.programme, row.award_fen)
    return found


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
