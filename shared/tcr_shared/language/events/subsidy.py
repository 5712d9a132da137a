"""Data schemas of the subsidy service's public events (tcr.subsidy.award.*).

Each event states the award of one beneficiary under one programme for one contract after the decision,
and `delta`, the change in the net amount paid, so a consumer can keep totals by adding deltas.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from tcr_shared.language.vocabulary import AwardStatus, Programme

SOURCE = "/tcr/subsidy"


class Cause(BaseModel):
    event_id: str = Field(description="The registry event that caused this decision")
    event_type: str
    position: int = Field(description="Its position in the registry feed")


class _AwardEvent(BaseModel):
    award_id: str = Field(description="Stable id of the (contract, beneficiary, programme) award")
    contract_id: str
    registration_number: str | None
    beneficiary: str = Field(description="Unified social credit code of the beneficiary")
    beneficiary_name: str | None
    beneficiary_kind: str
    beneficiary_region: str = Field(description="GB/T 2260 code where the beneficiary is located")
    programme: Programme
    policy_year: int
    rule_set: str
    clause: str
    base: str = Field(description="The amount the rate applies to, yuan")
    rate: str
    entitlement: str
    award: str = Field(description="The net award for this contract after the event")
    delta: str = Field(description="Change in the net award caused by this event (negative for claw-backs)")
    status: AwardStatus
    cap: str
    cap_used_before: str
    cap_used_after: str
    cause: Cause
    explanation: str


class AwardDecidedV1(_AwardEvent):
    pass


class AwardAdjustedV1(_AwardEvent):
    previous_award: str


class AwardClawedBackV1(_AwardEvent):
    previous_award: str


SUBSIDY_EVENT_TYPES: dict[str, type[BaseModel]] = {
    "tcr.subsidy.award.decided.v1": AwardDecidedV1,
    "tcr.subsidy.award.adjusted.v1": AwardAdjustedV1,
    "tcr.subsidy.award.clawed_back.v1": AwardClawedBackV1,
}
