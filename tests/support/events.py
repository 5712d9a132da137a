"""The one event builder of the tests: public events in the shapes the registry and subsidy services publish.

- `registry_event` / `subsidy_event`: {type, subject, data} built through the published pydantic models (valid by
  construction), for the partner tests' publisher.
- `Feed` (a growing list of registry FeedEvents with positions), `terms`, `party` and `award`: hand-made feed
  events for projections and rules that read a feed (the reporting tests).
"""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, date, datetime
from typing import Any

from tcr_shared.language.events.envelope import FeedEvent
from tcr_shared.language.events.registry import (
    ContractCertifiedV1,
    ContractRevokedV1,
    ContractSubmittedV1,
    ContractTerms,
    PublicParty,
)
from tcr_shared.language.events.subsidy import AwardDecidedV1, Cause
from tcr_shared.language.vocabulary import AwardEventType, RegistryEventType, registry_event_type

_ids = itertools.count(1)


# --- events for a publisher, through the published models -------------------------------------------------------
CODES = {
    "640104": "91640100MA76ABCD1X",
    "640205": "91640200MA76ABCD2X",
    "640302": "91640300MA76ABCD3X",
    "640181": "91640181MA7F3K2Q1Q",
    "110108": "91110108MA01ABCD4X",
}


def public_terms(
    seller_region: str = "640104", buyer_region: str = "640181", *, buyer_individual: bool = False
) -> ContractTerms:
    """Terms as partners receive them (validated by the published models): two named organisations."""
    buyer = (
        PublicParty(name=None, kind="individual", region=buyer_region)
        if buyer_individual
        else PublicParty(
            name=f"Buyer {buyer_region} Co.",
            kind="enterprise",
            credit_code=CODES.get(buyer_region, "91640181MA7F3K2Q1Q"),
            region=buyer_region,
        )
    )
    return ContractTerms(
        title="Licence of a patent for drip irrigation control",
        category="licence",
        subcategory="patent_ordinary",
        signed_on=date(2025, 3, 1),
        amount="9000000.00",
        technology_amount="8000000.00",
        consideration="money",
        result_id="ZL202110123456.7",
        seller=PublicParty(
            name="Ningxia University", kind="university", credit_code="126400004550001239", region=seller_region
        ),
        buyer=buyer,
    )


def registry_event(
    kind: str = "certified", seller_region: str = "640104", buyer_region: str = "640181", **options
) -> dict:
    """{type, subject, data} for the test publisher's append endpoint."""
    contract_id = str(uuid.uuid4())
    now = datetime.now(UTC).isoformat()
    t = public_terms(seller_region, buyer_region, buyer_individual=options.get("buyer_individual", False))
    if kind == "submitted":
        data = ContractSubmittedV1(
            contract_id=contract_id, point_id="p1", status="submitted", terms=t, submitted_at=now
        )
    elif kind == "certified":
        data = ContractCertifiedV1(
            contract_id=contract_id,
            point_id="p1",
            status="certified",
            terms=t,
            registration_number="2025640101000001",
            certified_at=now,
            policy_year=2025,
            expert_review_ref="ER-1",
        )
    elif kind == "revoked":
        data = ContractRevokedV1(
            contract_id=contract_id,
            point_id="p1",
            status="revoked",
            terms=t,
            registration_number="2025640101000001",
            policy_year=2025,
            reason="fraud",
            revoked_at=now,
        )
    else:
        raise ValueError(kind)
    body = data.model_dump(mode="json")
    if "extra_personal" in options:  # what an upstream mistake would look like
        body["terms"]["buyer"].update(options["extra_personal"])
    return {"type": registry_event_type(kind), "subject": contract_id, "data": body}


def subsidy_event(region: str = "640181") -> dict:
    contract_id = str(uuid.uuid4())
    data = AwardDecidedV1(
        award_id=str(uuid.uuid4()),
        contract_id=contract_id,
        registration_number="2025640101000001",
        beneficiary="91640181MA7F3K2Q1Q",
        beneficiary_name="Buyer Co.",
        beneficiary_kind="enterprise",
        beneficiary_region=region,
        programme="import",
        policy_year=2025,
        rule_set="ningxia-2020",
        clause="(四)",
        base="9000000.00",
        rate="0.30",
        entitlement="2700000.00",
        award="2700000.00",
        delta="2700000.00",
        status="full",
        cap="5000000.00",
        cap_used_before="0.00",
        cap_used_after="2700000.00",
        cause=Cause(event_id=str(uuid.uuid4()), event_type=RegistryEventType.CERTIFIED, position=1),
        explanation="30% of 9000000.00",
    )
    return {"type": AwardEventType.DECIDED, "subject": contract_id, "data": data.model_dump(mode="json")}


# --- feed events for a reader (projections, rules) -------------------------------------------------------------
def party(region: str | None, kind: str = "enterprise", name: str = "Org") -> dict[str, Any]:
    """A party as a terms record holds it; no region means a foreign party."""
    if region is None:
        return {"name": name, "kind": "foreign", "credit_code": None, "region": None, "country": "DE"}
    return {"name": name, "kind": kind, "credit_code": None, "region": region}


def terms(
    seller: str | None, buyer: str | None, amount: str, technology_amount: str, category: str = "licence"
) -> dict[str, Any]:
    """Terms as a feed event's data carries them, with the parties in these regions."""
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
            type=registry_event_type(type_),
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
        type=f"{AwardEventType.PREFIX}{kind}.v1",
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
