"""Realistic public events, built through the contract's own pydantic models (so they are valid by construction)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

from tcr_shared.language.events.registry import (
    ContractCertifiedV1,
    ContractRevokedV1,
    ContractSubmittedV1,
    ContractTerms,
    PublicParty,
)
from tcr_shared.language.events.subsidy import AwardDecidedV1, Cause

CODES = {
    "640104": "91640100MA76ABCD1X",
    "640205": "91640200MA76ABCD2X",
    "640302": "91640300MA76ABCD3X",
    "640181": "91640181MA7F3K2Q1Q",
    "110108": "91110108MA01ABCD4X",
}


def terms(
    seller_region: str = "640104", buyer_region: str = "640181", *, buyer_individual: bool = False
) -> ContractTerms:
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
    t = terms(seller_region, buyer_region, buyer_individual=options.get("buyer_individual", False))
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
    return {"type": f"tcr.registry.contract.{kind}.v1", "subject": contract_id, "data": body}


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
        cause=Cause(event_id=str(uuid.uuid4()), event_type="tcr.registry.contract.certified.v1", position=1),
        explanation="30% of 9000000.00",
    )
    return {"type": "tcr.subsidy.award.decided.v1", "subject": contract_id, "data": data.model_dump(mode="json")}
