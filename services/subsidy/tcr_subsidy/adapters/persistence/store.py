"""Loading what a page of registry events needs, and writing back what it changed, in the caller's transaction."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from decimal import Decimal

from sqlalchemy import BigInteger, Integer, Text, TextClause, bindparam, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from tcr_subsidy.adapters.persistence import tables as t
from tcr_subsidy.domain.awards import (
    CERTIFIED,
    Award,
    AwardEvent,
    CapUsage,
    ContractRecord,
    Engine,
    RegistryEvent,
    State,
)

_CHUNK = 500
_LOOKUP = 100  # keys per IN (...) lookup: small enough that PostgreSQL always picks the index


def to_fen(amount: Decimal) -> int:
    return int((amount * 100).to_integral_exact())


def from_fen(fen: int) -> Decimal:
    return Decimal(int(fen)).scaleb(-2)


def _chunks(items: list, size: int = _CHUNK) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def award_from_row(r) -> Award:
    return Award(
        award_id=r.award_id,
        contract_id=r.contract_id,
        registration_number=r.registration_number,
        beneficiary=r.beneficiary,
        beneficiary_name=r.beneficiary_name,
        beneficiary_kind=r.beneficiary_kind,
        beneficiary_region=r.beneficiary_region,
        programme=r.programme,
        policy_year=r.policy_year,
        rule_set=r.rule_set,
        clause=r.clause,
        cap_key=r.cap_key,
        project=r.project,
        base=from_fen(r.base_fen),
        rate=Decimal(r.rate),
        entitlement=from_fen(r.entitlement_fen),
        award=from_fen(r.award_fen),
        status=r.status,
        cap=from_fen(r.cap_fen),
        explanation=r.explanation,
        decided_position=r.decided_position,
        updated_position=r.updated_position,
    )


def _award_row(a: Award) -> dict:
    return {
        "award_id": a.award_id,
        "contract_id": a.contract_id,
        "registration_number": a.registration_number,
        "beneficiary": a.beneficiary,
        "beneficiary_name": a.beneficiary_name,
        "beneficiary_kind": a.beneficiary_kind,
        "beneficiary_region": a.beneficiary_region,
        "programme": a.programme,
        "policy_year": a.policy_year,
        "rule_set": a.rule_set,
        "clause": a.clause,
        "cap_key": a.cap_key,
        "project": a.project,
        "base_fen": to_fen(a.base),
        "rate": str(a.rate),
        "entitlement_fen": to_fen(a.entitlement),
        "award_fen": to_fen(a.award),
        "status": a.status,
        "cap_fen": to_fen(a.cap),
        "explanation": a.explanation,
        "decided_position": a.decided_position,
        "updated_position": a.updated_position,
    }


def _contract_row(c: ContractRecord) -> dict:
    return {
        "contract_id": c.contract_id,
        "status": c.status,
        "registration_number": c.registration_number,
        "policy_year": c.policy_year,
        "rule_set": c.rule_set,
        "certified_at": c.certified_at,
        "result_id": c.result_id,
        "cause_position": c.cause_position,
        "explanation": c.explanation,
        "considered": json.dumps(c.considered, ensure_ascii=False, sort_keys=True),
    }


def contract_from_row(r) -> ContractRecord:
    return ContractRecord(
        contract_id=r.contract_id,
        status=r.status,
        registration_number=r.registration_number,
        policy_year=r.policy_year,
        rule_set=r.rule_set,
        certified_at=r.certified_at,
        result_id=r.result_id,
        cause_position=r.cause_position,
        explanation=r.explanation,
        considered=json.loads(r.considered),
    )


def _cap_row(c: CapUsage) -> dict:
    return {
        "cap_key": c.key,
        "programme": c.programme,
        "beneficiary": c.beneficiary,
        "policy_year": c.policy_year,
        "project": c.project,
        "used_fen": to_fen(c.used),
    }


class PageState(State):
    """A `State` preloaded from the database for one page; remembers which rows exist (update vs insert)."""

    def __init__(self) -> None:
        super().__init__(strict=True)
        self.stored_contracts: set[str] = set()
        self.stored_awards: set[str] = set()
        self.stored_caps: set[str] = set()


def _is_postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _pg_lookup(table, column: str):
    """Rows of `table` whose `column` is one of an array of keys, joined against `unnest` rather than written as
    `= ANY(:keys)`: asyncpg prepares statements and PostgreSQL soon switches to a generic plan, in which
    `= ANY($1)` cannot hash the array and compares every row with every key (a page of 1,000 cap keys then took
    ~250 ms against 30k caps); the join is a hash or index lookup whatever the plan."""
    return text(
        f"SELECT t.* FROM {table.name} AS t JOIN unnest(CAST(:keys AS VARCHAR[])) AS k(key) ON t.{column} = k.key"
    )


_PG_LOOKUPS = {
    (table.name, column): _pg_lookup(table, column)
    for table, column in ((t.contracts, "contract_id"), (t.awards, "contract_id"), (t.caps, "cap_key"))
}


async def _rows_in(session: AsyncSession, query, column, keys: list[str]) -> list:
    """Rows whose `column` is one of `keys`: on PostgreSQL one round trip (a join with the array of keys);
    elsewhere IN lists of at most _LOOKUP keys."""
    if not keys:
        return []
    if _is_postgres(session):
        return list((await session.execute(_PG_LOOKUPS[(column.table.name, column.name)], {"keys": keys})).all())
    rows: list = []
    for chunk in _chunks(keys, _LOOKUP):
        rows.extend((await session.execute(query.where(column.in_(chunk)))).all())
    return rows


async def load_page_state(session: AsyncSession, engine: Engine, events: Sequence[RegistryEvent]) -> PageState:
    state = PageState()
    contract_ids = sorted({e.contract_id for e in events})
    for r in await _rows_in(session, select(t.contracts), t.contracts.c.contract_id, contract_ids):
        state.contracts[r.contract_id] = contract_from_row(r)
        state.stored_contracts.add(r.contract_id)
    # Only contracts certified earlier can have awards: during catch-up most contracts of a page are new.
    decided = sorted(c.contract_id for c in state.contracts.values() if c.status in ("certified", "revoked"))
    for r in await _rows_in(session, select(t.awards), t.awards.c.contract_id, decided):
        award = award_from_row(r)
        state.awards[award.award_id] = award
        state.by_contract.setdefault(award.contract_id, []).append(award.award_id)
        state.stored_awards.add(award.award_id)
    keys: set[str] = {a.cap_key for a in state.awards.values()}
    years = {c.contract_id: c.policy_year for c in state.contracts.values() if c.policy_year is not None}
    for event in events:
        if event.type == CERTIFIED and event.contract_id not in years:
            year = engine.certified_year(event)
            if year is not None:
                years[event.contract_id] = year
        keys |= engine.cap_keys(event, years.get(event.contract_id))
    state.loaded_cap_keys = keys
    for r in await _rows_in(session, select(t.caps), t.caps.c.cap_key, sorted(keys)):
        state.caps[r.cap_key] = CapUsage(
            r.cap_key, r.programme, r.beneficiary, r.policy_year, r.project, from_fen(r.used_fen)
        )
        state.stored_caps.add(r.cap_key)
    return state


async def _upsert(session: AsyncSession, table, pk: str, rows: list[dict], stored: set[str]) -> None:
    if not rows:
        return
    if _is_postgres(session):
        await session.execute(_PG_UPSERTS[table.name], _columns(table, rows))
        return
    inserts = [r for r in rows if r[pk] not in stored]
    updates = [r for r in rows if r[pk] in stored]
    if inserts:
        await session.execute(table.insert(), inserts)
    if updates:
        columns = [c.name for c in table.columns if c.name != pk]
        statement = (
            table.update().where(table.c[pk] == bindparam(f"k_{pk}")).values({c: bindparam(f"v_{c}") for c in columns})
        )
        await session.execute(statement, [{f"k_{pk}": r[pk], **{f"v_{c}": r[c] for c in columns}} for r in updates])


# PostgreSQL: each table's page of rows goes in ONE statement, one array per column (unnest), instead of one
# parameter set per row (executemany): a single round trip, and no per-row parameter processing in SQLAlchemy.
def _pg_array_type(column) -> str:
    if isinstance(column.type, BigInteger):
        return "BIGINT[]"
    if isinstance(column.type, Integer):
        return "INTEGER[]"
    return "TEXT[]" if isinstance(column.type, Text) else "VARCHAR[]"


def _pg_unnest(table, names: list[str]) -> str:
    return ", ".join(f"CAST(:{n} AS {_pg_array_type(table.c[n])})" for n in names)


def _pg_upsert(table) -> TextClause:
    names = [c.name for c in table.columns]
    (pk,) = [c.name for c in table.primary_key.columns]
    updates = ", ".join(f"{n} = EXCLUDED.{n}" for n in names if n != pk)
    return text(
        f"INSERT INTO {table.name} ({', '.join(names)}) SELECT * FROM unnest({_pg_unnest(table, names)}) "
        f"ON CONFLICT ({pk}) DO UPDATE SET {updates}"
    )


def _columns(table, rows: list[dict]) -> dict[str, list]:
    return {c.name: [r[c.name] for r in rows] for c in table.columns}


_PG_UPSERTS = {table.name: _pg_upsert(table) for table in (t.contracts, t.awards, t.caps)}
_AWARD_EVENT_COLUMNS = [c.name for c in t.award_events.columns if c.name != "position"]
# Positions continue the award feed: head + the event's place in the page, in the same statement.
_PG_APPEND_AWARD_EVENTS = text(
    f"INSERT INTO {t.award_events.name} (position, {', '.join(_AWARD_EVENT_COLUMNS)}) "
    f"SELECT h.head + u.ord, {', '.join(f'u.{n}' for n in _AWARD_EVENT_COLUMNS)} "
    f"FROM unnest({_pg_unnest(t.award_events, _AWARD_EVENT_COLUMNS)}) "
    f"WITH ORDINALITY AS u({', '.join(_AWARD_EVENT_COLUMNS)}, ord) "
    f"CROSS JOIN (SELECT COALESCE(MAX(position), 0) AS head FROM {t.award_events.name}) AS h"
)


async def award_feed_head(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.coalesce(func.max(t.award_events.c.position), 0))) or 0)


async def write_page(session: AsyncSession, state: PageState, outputs: list[AwardEvent], skipped: list[dict]) -> int:
    """Write the page's changes; returns the number of award events appended to the service's feed."""
    await _upsert(
        session,
        t.contracts,
        "contract_id",
        [_contract_row(state.contracts[c]) for c in sorted(state.dirty_contracts)],
        state.stored_contracts,
    )
    await _upsert(
        session,
        t.awards,
        "award_id",
        [_award_row(state.awards[a]) for a in sorted(state.dirty_awards)],
        state.stored_awards,
    )
    await _upsert(
        session, t.caps, "cap_key", [_cap_row(state.caps[k]) for k in sorted(state.dirty_caps)], state.stored_caps
    )
    if outputs and _is_postgres(session):
        await session.execute(
            _PG_APPEND_AWARD_EVENTS,
            {
                "id": [o.id for o in outputs],
                "type": [o.type for o in outputs],
                "time": [o.time for o in outputs],
                "subject": [o.subject for o in outputs],
                "award_id": [o.award_id for o in outputs],
                "cause_position": [o.cause_position for o in outputs],
                "data": [json.dumps(o.data, ensure_ascii=False, sort_keys=True) for o in outputs],
            },
        )
    elif outputs:
        head = await award_feed_head(session)
        rows = [
            {
                "position": head + i,
                "id": o.id,
                "type": o.type,
                "time": o.time,
                "subject": o.subject,
                "award_id": o.award_id,
                "cause_position": o.cause_position,
                "data": json.dumps(o.data, ensure_ascii=False, sort_keys=True),
            }
            for i, o in enumerate(outputs, start=1)
        ]
        for chunk in _chunks(rows):
            await session.execute(t.award_events.insert(), chunk)
    if skipped:
        await session.execute(t.skipped_events.insert(), skipped)
    return len(outputs)
