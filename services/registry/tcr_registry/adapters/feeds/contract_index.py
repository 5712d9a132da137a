"""The contract index: a projection of the registry's own feed into a table that lists and filters fast.
It follows the log through the same exactly-once mechanism as the other services' projections."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from sqlalchemy import bindparam, insert, update
from sqlalchemy.ext.asyncio import AsyncSession

from tcr_registry.adapters.persistence.models import contract_index
from tcr_shared.language.events.envelope import FeedEvent
from tcr_shared.language.policy_time import policy_year
from tcr_shared.language.vocabulary import RegistryEventType


def _party_code(party: dict) -> str | None:
    return party.get("credit_code") or (f"{party['country']}:{party['name']}" if party.get("country") else None)


def _columns(event: FeedEvent) -> dict:
    data = event.data
    terms = data["terms"]
    summary = {
        "id": data["contract_id"],
        "status": data["status"],
        "title": terms["title"],
        "category": terms["category"],
        "subcategory": terms["subcategory"],
        "signed_on": terms["signed_on"],
        "amount": terms["amount"],
        "technology_amount": terms["technology_amount"],
        "seller": terms["seller"],
        "buyer": terms["buyer"],
        "registration_number": data.get("registration_number"),
        "policy_year": data.get("policy_year"),
    }
    columns = {
        "status": data["status"],
        "category": terms["category"],
        "amount": Decimal(terms["amount"]),
        "seller_code": _party_code(terms["seller"]),
        "buyer_code": _party_code(terms["buyer"]),
        "seller_region": terms["seller"].get("region"),
        "buyer_region": terms["buyer"].get("region"),
    }
    if data.get("registration_number"):
        columns["registration_number"] = data["registration_number"]
    if data.get("policy_year"):
        columns["year"] = data["policy_year"]
    return {"summary": summary, **columns}


async def apply_page(session: AsyncSession, events: Sequence[FeedEvent]) -> None:
    """Inserts for new contracts, then updates in log order; each group as one executemany."""
    rows, changes = [], []
    for event in events:
        columns = _columns(event)
        if event.type == RegistryEventType.SUBMITTED:
            submitted = datetime.fromisoformat(event.data["submitted_at"])
            rows.append(
                {
                    "contract_id": event.subject,
                    "first_position": event.position,
                    "point_id": event.data["point_id"],
                    "year": policy_year(submitted),
                    **columns,
                }
            )
        else:
            changes.append({"key": event.subject, **columns})
    if rows:
        await session.execute(insert(contract_index), rows)
    # Updates of one contract must land in order; executemany keeps the list's order.
    for group in _uniform_groups(changes):
        columns = [k for k in group[0] if k != "key"]
        statement = (
            update(contract_index)
            .where(contract_index.c.contract_id == bindparam("key"))
            .values({c: bindparam(c) for c in columns})
        )
        await session.execute(statement.execution_options(synchronize_session=False), group)


def _uniform_groups(changes: list[dict]) -> list[list[dict]]:
    """Consecutive runs of updates that set the same columns (executemany needs one shape)."""
    groups: list[list[dict]] = []
    for change in changes:
        if groups and groups[-1][0].keys() == change.keys():
            groups[-1].append(change)
        else:
            groups.append([change])
    return groups
