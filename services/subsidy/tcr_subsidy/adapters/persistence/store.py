"""Loading what a page of registry events needs, and writing back what it changed, in the caller's transaction."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from operator import itemgetter

from sqlalchemy import Table, bindparam, delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tcr_shared.language.money import from_fen, to_fen
from tcr_shared.platform.database import is_postgres, pg_columns, pg_copy, pg_upsert, rows_in
from tcr_subsidy.adapters.persistence import tables as t
from tcr_subsidy.application.page import PageLedger
from tcr_subsidy.application.ports import SkippedEvent
from tcr_subsidy.application.projection import REGISTRY_FEED
from tcr_subsidy.domain.award_events import AwardEvent
from tcr_subsidy.domain.ledger import Award, CapUsage, ContractRecord

_CHUNK = 500
# json.dumps(value, ensure_ascii=False, sort_keys=True), the stored form, the same bytes, without building an encoder
# per call or tracking containers for cycles (decisions make none; one would fail on recursion instead)
_dumps = json.JSONEncoder(ensure_ascii=False, sort_keys=True, check_circular=False).encode


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
        "considered": _dumps(c.considered),
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


def _tuples(table, rows: list[dict]) -> list[tuple]:
    if not rows:
        return []
    row = itemgetter(*(c.name for c in table.columns))  # one C call per row builds its tuple
    return [row(r) for r in rows]


async def _upsert(session: AsyncSession, table, pk: str, inserts: list[dict], updates: list[dict]) -> None:
    """Rows the page created are inserted, rows it loaded are updated: the page ledger knows which (it loaded
    every row the page could touch). On PostgreSQL new rows go by COPY and changed rows in one unnest upsert."""
    if is_postgres(session):
        await pg_copy(session, table, _tuples(table, inserts))
        if updates:
            await session.execute(_PG_UPSERTS[table.name], pg_columns(table, updates))
        return
    if inserts:
        await session.execute(table.insert(), inserts)
    if updates:
        columns = [c.name for c in table.columns if c.name != pk]
        statement = (
            table.update().where(table.c[pk] == bindparam(f"k_{pk}")).values({c: bindparam(f"v_{c}") for c in columns})
        )
        await session.execute(statement, [{f"k_{pk}": r[pk], **{f"v_{c}": r[c] for c in columns}} for r in updates])


# PostgreSQL: the rows a page changed go in ONE statement per table, one array per column (unnest).
_PG_UPSERTS = {table.name: pg_upsert(table) for table in (t.contracts, t.awards, t.caps)}


async def award_feed_head(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.coalesce(func.max(t.award_events.c.position), 0))) or 0)


class SqlAwardStore:
    """The AwardStore port over the projection's tables, read in the caller's session."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def load_contracts(self, page: PageLedger, contract_ids: Sequence[str]) -> None:
        session = self.session
        loaded = [contract_from_row(r) for r in await rows_in(session, t.contracts.c.contract_id, list(contract_ids))]
        for record in loaded:
            page.stored_contract(record)
        # Only contracts certified earlier can have awards: during catch-up most contracts of a page are new. (Only
        # those loaded here: the page may hold others already, carried with their awards from the page before.)
        decided = sorted(c.contract_id for c in loaded if c.status in ("certified", "revoked"))
        for r in await rows_in(session, t.awards.c.contract_id, decided):
            page.stored_award(award_from_row(r))

    async def load_caps(self, page: PageLedger, cap_keys: Sequence[str]) -> None:
        for r in await rows_in(self.session, t.caps.c.cap_key, list(cap_keys)):
            page.stored_cap(
                CapUsage(r.cap_key, r.programme, r.beneficiary, r.policy_year, r.project, from_fen(r.used_fen))
            )


@dataclass(frozen=True)
class PageRows:
    """What one page changed, as rows, taken when the page was decided: the next page may go on changing the same
    records in memory while these rows are written (`NotifyingSink` decides page N+1 while page N commits)."""

    tables: tuple[tuple[Table, str, list[dict], list[dict]], ...]  # table, key, rows to insert, rows to update
    award_events: list[tuple]  # the award feed's columns after `position`, which is assigned when written
    skipped: list[dict]


def page_rows(page: PageLedger, outputs: Sequence[AwardEvent], skipped: Sequence[SkippedEvent]) -> PageRows:
    changes = (
        (
            t.contracts,
            "contract_id",
            page.stored_contracts,
            [_contract_row(page.contracts[c]) for c in sorted(page.changed_contracts)],
        ),
        (t.awards, "award_id", page.stored_awards, [_award_row(page.awards[a]) for a in sorted(page.changed_awards)]),
        (t.caps, "cap_key", page.stored_caps, [_cap_row(page.caps[k]) for k in sorted(page.changed_caps)]),
    )
    tables = tuple(
        (table, pk, [r for r in rows if r[pk] not in stored], [r for r in rows if r[pk] in stored])
        for table, pk, stored, rows in changes
    )
    events = [(o.id, o.type, o.time, o.subject, o.award_id, o.cause_position, _dumps(o.data)) for o in outputs]
    return PageRows(tables, events, [dataclasses.asdict(s) for s in skipped])


async def write_rows(session: AsyncSession, rows: PageRows) -> int:
    """Write a page's rows in the caller's transaction; returns the number of award events appended."""
    for table, pk, inserts, updates in rows.tables:
        await _upsert(session, table, pk, inserts, updates)
    if rows.award_events:
        head = await award_feed_head(session)
        # the feed's positions follow its head, read in this transaction (the single follower holds the lease)
        numbered = [(head + i, *row) for i, row in enumerate(rows.award_events, start=1)]
        if is_postgres(session):
            await pg_copy(session, t.award_events, numbered)
        else:
            names = [c.name for c in t.award_events.columns]
            for chunk in _chunks([dict(zip(names, row, strict=True)) for row in numbered]):
                await session.execute(t.award_events.insert(), chunk)
    if rows.skipped:
        await session.execute(t.skipped_events.insert(), rows.skipped)
    return len(rows.award_events)


async def wipe(db: AsyncEngine) -> None:
    """Delete every derived row (the service must be stopped): the next follow starts from position 0."""
    async with db.begin() as conn:
        for table in (t.award_events, t.awards, t.caps, t.contracts, t.skipped_events):
            await conn.execute(delete(table))
        await conn.execute(delete(t.feed_tracking).where(t.feed_tracking.c.feed == REGISTRY_FEED))
