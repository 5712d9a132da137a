"""The registry's application layer in memory: a fake unit of work over a dictionary (in the style of
cosmicpython's FakeUnitOfWork), and valid terms to start from. No database, no HTTP, no threads."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from uuid import UUID, uuid4

from tcr_registry.application.actor import PointActor
from tcr_registry.application.ports import Aggregate, Command
from tcr_registry.domain.terms import Party, Terms
from tests.support.registry import credit_code

NOW = datetime(2025, 6, 1, 10, 0, tzinfo=UTC)


class FakeUnitOfWork:
    """Implements tcr_registry.application.ports.UnitOfWork over a dict of committed aggregates. Like the real
    writer, it hands the command copies, so a command that raises leaves nothing behind."""

    def __init__(self, committed: dict[UUID, Aggregate]) -> None:
        self._committed = committed
        self.touched: dict[UUID, Aggregate] = {}

    def is_new(self, aggregate_id: UUID) -> bool:
        return aggregate_id not in self.touched and aggregate_id not in self._committed

    def get(self, aggregate_id: UUID) -> Aggregate | None:
        if aggregate_id not in self.touched:
            if aggregate_id not in self._committed:
                return None
            self.touched[aggregate_id] = copy.deepcopy(self._committed[aggregate_id])
        return self.touched[aggregate_id]

    def add(self, aggregate: Aggregate) -> None:
        self.touched[aggregate.id] = aggregate


@dataclass
class FakeRegistry:
    """Runs commands one after another, keeping what each committed and the log of committed events."""

    aggregates: dict[UUID, Aggregate] = field(default_factory=dict)
    log: list = field(default_factory=list)

    def run(self, command: Command):
        uow = FakeUnitOfWork(self.aggregates)
        result = command(uow)  # raises: nothing of this command is kept
        for aggregate in uow.touched.values():
            self.log.extend(aggregate.collect_events())
            self.aggregates[aggregate.id] = aggregate
        return result


def point(jurisdiction: str = "6401", number: str = "01", point_id: str | None = None) -> PointActor:
    return PointActor(point_id or str(uuid4()), jurisdiction, number)


def organisation(region: str = "640104", kind: str = "enterprise") -> Party:
    prefix = "12" if kind in ("university", "research_institute", "public_institution") else "91"
    return Party(name=f"{kind} in {region}", kind=kind, credit_code=credit_code(region, prefix), region=region)


def terms(seller_region: str = "640104", buyer_region: str = "640181", **changes) -> Terms:
    base = Terms(
        title="一种枸杞多糖提取技术许可合同",
        category="licence",
        subcategory="patent_ordinary",
        signed_on=date(2025, 3, 1),
        amount=Decimal("900000.00"),
        technology_amount=Decimal("800000.00"),
        consideration="money",
        seller=organisation(seller_region, "university"),
        buyer=organisation(buyer_region),
        result_id="ZL202110123456.7",
    )
    return replace(base, **changes)
