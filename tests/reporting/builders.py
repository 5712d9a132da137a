"""Hand-made feed events in the shape the registry and subsidy services publish (shared/events/*.py)."""

from __future__ import annotations

import itertools
from typing import Any

from tcr_shared.language.events.envelope import FeedEvent

_ids = itertools.count(1)


def party(region: str | None, kind: str = "enterprise", name: str = "Org") -> dict[str, Any]:
    if region is None:
        return {"name": name, "kind": "foreign", "credit_code": None, "region": None, "country": "DE"}
    return {"name": name, "kind": kind, "credit_code": None, "region": region}


def terms(
    seller: str | None, buyer: str | None, amount: str, technology_amount: str, category: str = "licence"
) -> dict[str, Any]:
    return {
        "title": "t",
        "category": category,
        "subcategory": None,
        "signed_on": "2025-01-02",
        "amount": amount,
        "technology_amount": technology_amount,
        "consideration": "money",
        "result_id": None,
        "seller": party(seller),
        "buyer": party(buyer),
        "intermediary": None,
    }


class Feed:
    """A growing list of registry events with increasing positions."""

    def __init__(self, start: int = 0) -> None:
        self.position = start
        self.events: list[FeedEvent] = []

    def _emit(self, type_: str, contract_id: str, data: dict[str, Any]) -> FeedEvent:
        self.position += 1
        event = FeedEvent(
            id=f"e{next(_ids)}",
            source="/tcr/registry",
            type=f"tcr.registry.contract.{type_}.v1",
            time="2025-06-01T00:00:00Z",
            subject=contract_id,
            position=self.position,
            data={"contract_id": contract_id, "point_id": "p1", **data},
        )
        self.events.append(event)
        return event

    def submit(self, cid: str, t: dict[str, Any]) -> FeedEvent:
        return self._emit("submitted", cid, {"status": "submitted", "terms": t, "submitted_at": "x"})

    def certify(self, cid: str, t: dict[str, Any], year: int) -> FeedEvent:
        self.submit(cid, t)
        return self._emit(
            "certified",
            cid,
            {
                "status": "certified",
                "terms": t,
                "policy_year": year,
                "registration_number": f"{year}640101000001",
                "certified_at": "x",
            },
        )

    def amend(self, cid: str, previous: dict[str, Any], t: dict[str, Any], year: int) -> FeedEvent:
        return self._emit(
            "amended",
            cid,
            {
                "status": "certified",
                "terms": t,
                "previous_terms": previous,
                "policy_year": year,
                "registration_number": "r",
                "reason": "fix",
                "changed_fields": [],
                "amended_at": "x",
            },
        )

    def revoke(self, cid: str, t: dict[str, Any], year: int) -> FeedEvent:
        return self._emit(
            "revoked",
            cid,
            {
                "status": "revoked",
                "terms": t,
                "policy_year": year,
                "registration_number": "r",
                "reason": "fraud",
                "revoked_at": "x",
            },
        )

    def reject(self, cid: str, t: dict[str, Any]) -> FeedEvent:
        self.submit(cid, t)
        return self._emit(
            "rejected", cid, {"status": "rejected", "terms": t, "reason_code": "x", "reason": "no", "rejected_at": "x"}
        )


def award(
    position: int,
    region: str,
    programme: str,
    delta: str,
    year: int,
    award: str | None = None,
    kind: str = "decided",
    award_id: str | None = None,
) -> FeedEvent:
    return FeedEvent(
        id=f"a{next(_ids)}",
        source="/tcr/subsidy",
        type=f"tcr.subsidy.award.{kind}.v1",
        time="2025-06-01T00:00:00Z",
        subject="c",
        position=position,
        data={
            "award_id": award_id or f"aw{position}",
            "contract_id": "c",
            "registration_number": None,
            "beneficiary": "x",
            "beneficiary_name": None,
            "beneficiary_kind": "enterprise",
            "beneficiary_region": region,
            "programme": programme,
            "policy_year": year,
            "rule_set": "ningxia-2020",
            "clause": "四",
            "base": "0.00",
            "rate": "0.30",
            "entitlement": award or delta,
            "award": award or delta,
            "delta": delta,
            "status": "full",
            "cap": "0.00",
            "cap_used_before": "0.00",
            "cap_used_after": "0.00",
            "cause": {"event_id": "e", "event_type": "t", "position": 1},
            "explanation": "",
        },
    )
