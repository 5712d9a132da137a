"""Data schemas of the registry's public events (tcr.registry.contract.*).

Every contract event carries `terms`: the contract's terms after the event, so a consumer never needs an
earlier event to understand a later one. Individuals' names and identity numbers are never part of it.
"""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field

from tcr_shared.language.vocabulary import Category, Consideration, ContractStatus, PartyKind

Money = str  # two-decimal string, e.g. "9000000.00"

SOURCE = "/tcr/registry"


class PublicParty(BaseModel):
    name: str | None = Field(description="Organisation name; null for individuals (personal data)")
    kind: PartyKind
    credit_code: str | None = Field(None, description="Unified social credit code (统一社会信用代码)")
    region: str | None = Field(None, description="GB/T 2260 six-digit region code; null for foreign parties")
    country: str | None = Field(None, description="ISO 3166-1 alpha-2, foreign parties only")


class ContractTerms(BaseModel):
    title: str
    category: Category
    subcategory: str | None
    signed_on: date
    amount: Money = Field(description="成交额: the whole contract price, yuan, two decimals")
    technology_amount: Money = Field(description="技术交易额: the part paid for the technology itself")
    consideration: Consideration
    result_id: str | None = None
    seller: PublicParty
    buyer: PublicParty
    intermediary: PublicParty | None = None


class _ContractEvent(BaseModel):
    contract_id: str
    status: ContractStatus = Field(description="The contract's status after this event")
    terms: ContractTerms


class ContractSubmittedV1(_ContractEvent):
    point_id: str = Field(description="The registration point (技术合同登记点) that registered the contract")
    submitted_at: str


class ContractCertifiedV1(_ContractEvent):
    registration_number: str = Field(description="16 digits: year, prefecture code, point number, sequence")
    certified_at: str
    policy_year: int = Field(description="Calendar year of certification in Asia/Shanghai")
    expert_review_ref: str | None = None


class ContractRejectedV1(_ContractEvent):
    reason_code: str
    reason: str
    rejected_at: str


class ContractWithdrawnV1(_ContractEvent):
    reason: str | None = None
    withdrawn_at: str


class ContractAmendedV1(_ContractEvent):
    registration_number: str | None
    policy_year: int | None
    reason: str
    changed_fields: list[str] = Field(description="Dotted names of the terms that changed, e.g. seller.region")
    previous_terms: ContractTerms
    amended_at: str


class ContractRevokedV1(_ContractEvent):
    registration_number: str
    policy_year: int
    reason: str
    revoked_at: str


REGISTRY_EVENT_TYPES: dict[str, type[BaseModel]] = {
    "tcr.registry.contract.submitted.v1": ContractSubmittedV1,
    "tcr.registry.contract.certified.v1": ContractCertifiedV1,
    "tcr.registry.contract.rejected.v1": ContractRejectedV1,
    "tcr.registry.contract.withdrawn.v1": ContractWithdrawnV1,
    "tcr.registry.contract.amended.v1": ContractAmendedV1,
    "tcr.registry.contract.revoked.v1": ContractRevokedV1,
}
