"""Read side: the ledger, a contract's awards, the award list, status figures and the award feed."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from tcr_shared.language.events.envelope import FeedEvent, FeedPage
from tcr_shared.language.events.subsidy import SOURCE
from tcr_shared.language.money import ZERO, format_money, from_fen
from tcr_shared.language.regions import area_prefix
from tcr_shared.language.vocabulary import PROGRAMMES, AwardEventType
from tcr_subsidy.adapters.persistence import tables as t
from tcr_subsidy.adapters.persistence.store import award_from_row, contract_from_row
from tcr_subsidy.application.verification import AwardAmount
from tcr_subsidy.domain.award_events import award_summary

AWARD_COLUMNS = (
    "award_id",
    "contract_id",
    "registration_number",
    "beneficiary",
    "beneficiary_name",
    "beneficiary_kind",
    "beneficiary_region",
    "programme",
    "policy_year",
    "rule_set",
    "clause",
    "base",
    "rate",
    "entitlement",
    "award",
    "status",
)


def feed_event_from_row(r) -> FeedEvent:
    return FeedEvent(
        id=r.id,
        source=SOURCE,
        type=r.type,
        time=r.time,
        subject=r.subject,
        position=r.position,
        data=json.loads(r.data),
    )


class Queries:
    def __init__(self, db: AsyncEngine) -> None:
        self._sessions = async_sessionmaker(db, expire_on_commit=False)

    # -- the award feed (EventLog protocol of tcr_shared.feeds.server) ----------------------------------------
    async def read(self, after: int, limit: int) -> FeedPage:
        async with self._sessions() as s:
            rows = (
                await s.execute(
                    select(t.award_events)
                    .where(t.award_events.c.position > after)
                    .order_by(t.award_events.c.position)
                    .limit(limit)
                )
            ).all()
            head = int(await s.scalar(select(func.coalesce(func.max(t.award_events.c.position), 0))) or 0)
        events = [feed_event_from_row(r) for r in rows]
        return FeedPage(events=events, next_after=events[-1].position if events else max(after, 0), head=head)

    async def head(self) -> int:
        async with self._sessions() as s:
            return int(await s.scalar(select(func.coalesce(func.max(t.award_events.c.position), 0))) or 0)

    # -- status -------------------------------------------------------------------------------------------
    async def skipped(self) -> list[dict[str, Any]]:
        async with self._sessions() as s:
            rows = (await s.execute(select(t.skipped_events).order_by(t.skipped_events.c.position))).all()
        return [dict(r._mapping) for r in rows]

    async def tracked_position(self, feed: str) -> int:
        async with self._sessions() as s:
            return int(await s.scalar(select(t.feed_tracking.c.position).where(t.feed_tracking.c.feed == feed)) or 0)

    # -- a contract's awards --------------------------------------------------------------------------------
    async def contract_awards(self, contract_id: str) -> dict[str, Any] | None:
        async with self._sessions() as s:
            row = (await s.execute(select(t.contracts).where(t.contracts.c.contract_id == contract_id))).first()
            if row is None:
                return None
            awards = [
                award_from_row(r)
                for r in (
                    await s.execute(
                        select(t.awards)
                        .where(t.awards.c.contract_id == contract_id)
                        .order_by(t.awards.c.decided_position, t.awards.c.award_id)
                    )
                ).all()
            ]
        awards.sort(key=lambda a: (a.decided_position, PROGRAMMES.index(a.programme), a.beneficiary))
        record = contract_from_row(row)
        return {
            "contract_id": contract_id,
            "status": record.status,
            "registration_number": record.registration_number,
            "policy_year": record.policy_year,
            "rule_set": record.rule_set,
            "awards": [{**award_summary(a), "explanation": a.explanation} for a in awards],
            "total": format_money(sum((a.award for a in awards), ZERO)),
            "explanation": record.explanation,
            "considered": record.considered,
        }

    # -- a beneficiary's ledger -------------------------------------------------------------------------------
    async def ledger(self, beneficiary: str, year: int) -> dict[str, Any] | None:
        async with self._sessions() as s:
            known = await s.scalar(
                select(func.count()).select_from(t.awards).where(t.awards.c.beneficiary == beneficiary)
            )
            if not known:
                return None
            rows = (
                await s.execute(
                    select(t.awards)
                    .where(
                        t.awards.c.beneficiary == beneficiary,
                        or_(
                            and_(t.awards.c.project.is_(None), t.awards.c.policy_year == year),
                            t.awards.c.project.isnot(None),
                        ),
                    )
                    .order_by(t.awards.c.decided_position, t.awards.c.award_id)
                )
            ).all()
            awards = [award_from_row(r) for r in rows]
            history: dict[str, list[dict[str, Any]]] = {}
            ids = [a.award_id for a in awards]
            for i in range(0, len(ids), 500):
                for r in (
                    await s.execute(
                        select(t.award_events)
                        .where(
                            t.award_events.c.award_id.in_(ids[i : i + 500]),
                            t.award_events.c.type != AwardEventType.DECIDED,
                        )
                        .order_by(t.award_events.c.position)
                    )
                ).all():
                    data = json.loads(r.data)
                    history.setdefault(r.award_id, []).append(
                        {
                            "type": r.type,
                            "position": r.position,
                            "time": r.time,
                            "previous_award": data.get("previous_award"),
                            "award": data["award"],
                            "delta": data["delta"],
                            "status": data["status"],
                            "cause": data["cause"],
                            "explanation": data["explanation"],
                        }
                    )
            latest = (
                await s.execute(
                    select(t.awards.c.beneficiary_name, t.awards.c.beneficiary_kind, t.awards.c.beneficiary_region)
                    .where(t.awards.c.beneficiary == beneficiary)
                    .order_by(t.awards.c.updated_position.desc())
                    .limit(1)
                )
            ).first()
        programmes: dict[str, dict[str, Any]] = {}
        for a in awards:
            line = {
                "contract_id": a.contract_id,
                "registration_number": a.registration_number,
                "policy_year": a.policy_year,
                "rule_set": a.rule_set,
                "clause": a.clause,
                "base": format_money(a.base),
                "rate": str(a.rate),
                "entitlement": format_money(a.entitlement),
                "award": format_money(a.award),
                "status": a.status,
                "explanation": a.explanation,
                "adjustments": history.get(a.award_id, []),
            }
            entry = programmes.setdefault(
                a.programme,
                {
                    "programme": a.programme,
                    "clause": a.clause,
                    "cap_scope": "policy_year" if a.project is None else "project",
                },
            )
            if a.project is None:
                entry.setdefault("awards", []).append(line)
                entry["cap"] = a.cap  # the cap of the latest decision's rule set
                entry["awarded"] = entry.get("awarded", ZERO) + a.award
            else:
                projects = entry.setdefault("projects", {})
                project = projects.setdefault(
                    a.project,
                    {
                        "project": a.project,
                        "result_id": a.project.split(":", 1)[1] if a.project.startswith("result:") else None,
                        "awarded": ZERO,
                        "awards": [],
                    },
                )
                project["cap"] = a.cap
                project["awarded"] += a.award
                project["awards"].append(line)
        out = []
        for name in PROGRAMMES:
            entry = programmes.get(name)
            if entry is None:
                continue
            if "projects" in entry:
                entry["projects"] = [_money_cap(p) for p in entry["projects"].values()]
                entry["awarded"] = format_money(sum((Decimal(p["awarded"]) for p in entry["projects"]), ZERO))
            else:
                _money_cap(entry)
            out.append(entry)
        return {
            "beneficiary": beneficiary,
            "name": latest.beneficiary_name,
            "kind": latest.beneficiary_kind,
            "region": latest.beneficiary_region,
            "year": year,
            "programmes": out,
        }

    # -- the award list ---------------------------------------------------------------------------------------
    def _filtered(self, year: int | None, programme: str | None, region: str | None):
        query = select(t.awards)
        if year is not None:
            query = query.where(t.awards.c.policy_year == year)
        if programme is not None:
            query = query.where(t.awards.c.programme == programme)
        if region is not None:
            query = query.where(t.awards.c.beneficiary_region.like(f"{area_prefix(region)}%"))
        return query

    async def list_awards(
        self, year: int | None, programme: str | None, region: str | None, after: str | None, limit: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        query = self._filtered(year, programme, region)
        if after:
            query = query.where(t.awards.c.award_id > after)
        query = query.order_by(t.awards.c.award_id).limit(limit + 1)
        async with self._sessions() as s:
            rows = (await s.execute(query)).all()
        items = [award_summary(award_from_row(r)) for r in rows[:limit]]
        return items, (items[-1]["award_id"] if len(rows) > limit else None)

    async def iter_awards(
        self, year: int | None, programme: str | None, region: str | None
    ) -> AsyncIterator[dict[str, Any]]:
        after = None
        while True:
            items, after = await self.list_awards(year, programme, region, after, 1000)
            for item in items:
                yield item
            if after is None:
                return

    # -- digest for verify ----------------------------------------------------------------------------------
    async def award_amounts(self) -> list[AwardAmount]:
        columns = (
            t.awards.c[n] for n in ("contract_id", "programme", "beneficiary", "policy_year", "award_fen", "status")
        )
        async with self._sessions() as s:
            rows = (await s.execute(select(*columns))).all()
        return [AwardAmount(r[0], r[1], r[2], r[3], from_fen(r[4]), r[5]) for r in rows]

    async def snapshot(self, up_to: int | None = None) -> dict[str, list]:
        """Every row that decisions produced, in a canonical order (compared by `tcr-subsidy verify`)."""
        async with self._sessions() as s:
            events = select(t.award_events).order_by(t.award_events.c.position)
            if up_to is not None:
                events = events.where(t.award_events.c.cause_position <= up_to)
            return {
                "award_events": [tuple(r) for r in (await s.execute(events)).all()],
                "awards": [tuple(r) for r in (await s.execute(select(t.awards).order_by(t.awards.c.award_id))).all()],
                "caps": [tuple(r) for r in (await s.execute(select(t.caps).order_by(t.caps.c.cap_key))).all()],
                "contracts": [
                    tuple(r) for r in (await s.execute(select(t.contracts).order_by(t.contracts.c.contract_id))).all()
                ],
                "skipped": [
                    tuple(r)
                    for r in (await s.execute(select(t.skipped_events).order_by(t.skipped_events.c.position))).all()
                ],
            }


def _money_cap(entry: dict[str, Any]) -> dict[str, Any]:
    cap: Decimal = entry["cap"]
    awarded: Decimal = entry["awarded"]
    entry["cap"] = format_money(cap)
    entry["awarded"] = format_money(awarded)
    entry["remaining"] = format_money(max(ZERO, cap - awarded))
    return entry
