"""Loading what a page of registry events needs, and writing back what it changed, in the caller's transaction."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from decimal import Decimal

from sqlalchemy import bindparam, delete, func, select
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


def _tuples(table, rows: list[dict]) -> list[tuple]:
    names = [c.name for c in table.columns]
    return [tuple(r[n] for n in names) for r in rows]


async def _upsert(session: AsyncSession, table, pk: str, rows: list[dict], stored: set[str]) -> None:
    """Rows the page created are inserted, rows it loaded are updated: the page ledger knows which (it loaded
    every row the page could touch). On PostgreSQL new rows go by COPY and changed rows in one unnest upsert."""
    if not rows:
        return
    inserts = [r for r in rows if r[pk] not in stored]
    updates = [r for r in rows if r[pk] in stored]
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
    """The AwardStore port over the projection's tables, in the caller's session (one transaction per page)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def load_contracts(self, page: PageLedger, contract_ids: Sequence[str]) -> None:
        session = self.session
        for r in await rows_in(session, t.contracts.c.contract_id, list(contract_ids)):
            page.stored_contract(contract_from_row(r))
        # Only contracts certified earlier can have awards: during catch-up most contracts of a page are new.
        decided = sorted(c.contract_id for c in page.contracts.values() if c.status in ("certified", "revoked"))
        for r in await rows_in(session, t.awards.c.contract_id, decided):
            page.stored_award(award_from_row(r))

    async def load_caps(self, page: PageLedger, cap_keys: Sequence[str]) -> None:
        for r in await rows_in(self.session, t.caps.c.cap_key, list(cap_keys)):
            page.stored_cap(
                CapUsage(r.cap_key, r.programme, r.beneficiary, r.policy_year, r.project, from_fen(r.used_fen))
            )

    async def feed_head(self) -> int:
        return await award_feed_head(self.session)

    async def write(self, page: PageLedger, events: Sequence[AwardEvent], skipped: Sequence[SkippedEvent]) -> None:
        await write_page(self.session, page, list(events), list(skipped))


async def write_page(
    session: AsyncSession, page: PageLedger, outputs: list[AwardEvent], skipped: list[SkippedEvent]
) -> int:
    """Write the page's changes; returns the number of award events appended to the service's feed."""
    changes = (
        (t.contracts, "contract_id", [_contract_row(page.contracts[c]) for c in sorted(page.changed_contracts)]),
        (t.awards, "award_id", [_award_row(page.awards[a]) for a in sorted(page.changed_awards)]),
        (t.caps, "cap_key", [_cap_row(page.caps[k]) for k in sorted(page.changed_caps)]),
    )
    stored = {t.contracts.name: page.stored_contracts, t.awards.name: page.stored_awards, t.caps.name: page.stored_caps}
    for table, pk, rows in changes:
        await _upsert(session, table, pk, rows, stored[table.name])
    if outputs:
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
        if is_postgres(session):
            await pg_copy(session, t.award_events, _tuples(t.award_events, rows))
        else:
            for chunk in _chunks(rows):
                await session.execute(t.award_events.insert(), chunk)
    if skipped:
        await session.execute(t.skipped_events.insert(), [dataclasses.asdict(s) for s in skipped])
    return len(outputs)


async def wipe(db: AsyncEngine) -> None:
    """Delete every derived row (the service must be stopped): the next follow starts from position 0."""
    async with db.begin() as conn:
        for table in (t.award_events, t.awards, t.caps, t.contracts, t.skipped_events):
            await conn.execute(delete(table))
        await conn.execute(delete(t.feed_tracking).where(t.feed_tracking.c.feed == REGISTRY_FEED))
