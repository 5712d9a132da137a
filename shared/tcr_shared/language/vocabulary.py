"""The words tcr's services and partners share, defined once: contract categories and subcategories, party kinds,
contract statuses, subsidy programmes and award statuses, and every public event type. Each list comes with the
Literal type that pydantic and FastAPI use to check requests, and with Chinese and English labels where people
read them. Import from here; never write one of these lists again."""

from __future__ import annotations

from typing import Literal, get_args

# --- contracts ------------------------------------------------------------------------------------------------
Category = Literal["development", "transfer", "licence", "consulting", "service"]
CATEGORIES: tuple[str, ...] = get_args(Category)

# The national classification (技术合同分类): the subcategories of each category; None where none is needed.
SUBCATEGORIES: dict[str, frozenset[str | None]] = {
    "development": frozenset({"commissioned", "cooperative"}),  # 技术开发: 委托 / 合作
    "transfer": frozenset({"patent", "patent_application", "technical_secret", "other"}),  # 技术转让
    "licence": frozenset({"patent_exclusive", "patent_sole", "patent_ordinary", "technical_secret", "other"}),
    "consulting": frozenset({None, "general"}),  # 技术咨询
    "service": frozenset({None, "general", "brokerage", "training"}),  # 技术服务, 技术中介, 技术培训
}

CATEGORY_LABELS: dict[str, dict[str, str]] = {
    "development": {"zh": "技术开发", "en": "Development"},
    "transfer": {"zh": "技术转让", "en": "Transfer"},
    "licence": {"zh": "技术许可", "en": "Licence"},
    "consulting": {"zh": "技术咨询", "en": "Consulting"},
    "service": {"zh": "技术服务", "en": "Service"},
}

Consideration = Literal["money", "equity"]
CONSIDERATIONS: tuple[str, ...] = get_args(Consideration)

PartyKind = Literal[
    "enterprise",
    "university",
    "research_institute",
    "public_institution",
    "government",
    "social_organisation",
    "individual",
    "foreign",
]
PARTY_KINDS: tuple[str, ...] = get_args(PartyKind)

PartyRole = Literal["seller", "buyer", "intermediary"]
PARTY_ROLES: tuple[str, ...] = get_args(PartyRole)

ContractStatus = Literal["submitted", "certified", "rejected", "withdrawn", "revoked"]
CONTRACT_STATUSES: tuple[str, ...] = get_args(ContractStatus)
SUBMITTED, CERTIFIED, REJECTED, WITHDRAWN, REVOKED = CONTRACT_STATUSES

STATUS_LABELS: dict[str, dict[str, str]] = {
    SUBMITTED: {"zh": "已提交", "en": "Submitted"},
    CERTIFIED: {"zh": "已认定登记", "en": "Certified"},
    REJECTED: {"zh": "不予登记", "en": "Rejected"},
    WITHDRAWN: {"zh": "已撤回", "en": "Withdrawn"},
    REVOKED: {"zh": "已撤销", "en": "Revoked"},
}

# --- subsidies --------------------------------------------------------------------------------------------------
Programme = Literal["import", "export_enterprise", "export_institution", "brokerage"]
PROGRAMMES: tuple[str, ...] = get_args(Programme)

PROGRAMME_LABELS: dict[str, dict[str, str]] = {
    "import": {"zh": "技术引进", "en": "Import (buyers)"},
    "export_enterprise": {"zh": "企业技术输出", "en": "Export, enterprises"},
    "export_institution": {"zh": "高校院所技术输出", "en": "Export, universities & institutes"},
    "brokerage": {"zh": "技术中介", "en": "Brokerage"},
}

AwardStatus = Literal["full", "capped", "clawed_back"]
AWARD_STATUSES: tuple[str, ...] = get_args(AwardStatus)

CapScope = Literal["policy_year", "project"]
CAP_SCOPES: tuple[str, ...] = get_args(CapScope)

Base = Literal["amount", "technology_amount"]
BASES: tuple[str, ...] = get_args(Base)


# --- public event types (CloudEvents `type`) --------------------------------------------------------------------
class RegistryEventType:
    """tcr.registry.contract.<what>.v1: what the registry publishes."""

    PREFIX = "tcr.registry.contract."
    SUBMITTED = "tcr.registry.contract.submitted.v1"
    CERTIFIED = "tcr.registry.contract.certified.v1"
    REJECTED = "tcr.registry.contract.rejected.v1"
    WITHDRAWN = "tcr.registry.contract.withdrawn.v1"
    AMENDED = "tcr.registry.contract.amended.v1"
    REVOKED = "tcr.registry.contract.revoked.v1"
    ALL: tuple[str, ...] = (SUBMITTED, CERTIFIED, REJECTED, WITHDRAWN, AMENDED, REVOKED)


class AwardEventType:
    """tcr.subsidy.award.<what>.v1: what the subsidy service publishes."""

    PREFIX = "tcr.subsidy.award."
    DECIDED = "tcr.subsidy.award.decided.v1"
    ADJUSTED = "tcr.subsidy.award.adjusted.v1"
    CLAWED_BACK = "tcr.subsidy.award.clawed_back.v1"
    ALL: tuple[str, ...] = (DECIDED, ADJUSTED, CLAWED_BACK)


def registry_event_type(what: str) -> str:
    """`certified` -> tcr.registry.contract.certified.v1"""
    return f"{RegistryEventType.PREFIX}{what}.v1"
