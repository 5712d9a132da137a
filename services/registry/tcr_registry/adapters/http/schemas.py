"""Request bodies. Shapes and types are checked here; the domain checks the rules (categories, credit codes,
regions, amounts that must add up) so that the same rules hold for every way a contract arrives."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from tcr_shared.language.money import parse_money
from tcr_shared.language.vocabulary import Consideration, PartyKind


def _money(value: object) -> str:
    parse_money(value)  # raises with a message that says what money looks like
    return value  # type: ignore[return-value]


Money = Annotated[str, BeforeValidator(_money), Field(examples=["9000000.00"])]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class PartyIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    kind: PartyKind
    credit_code: str | None = Field(None, description="统一社会信用代码, 18 characters with check digit")
    region: str | None = Field(None, description="GB/T 2260 six-digit code")
    country: str | None = Field(None, description="ISO 3166-1 alpha-2, foreign parties only")
    id_number: str | None = Field(None, description="Resident identity number, individuals only")


class ContractIn(Strict):
    title: str = Field(min_length=1, max_length=300)
    category: str
    subcategory: str | None = None
    signed_on: date
    amount: Money
    technology_amount: Money
    consideration: Consideration = "money"
    result_id: str | None = Field(None, max_length=100)
    seller: PartyIn
    buyer: PartyIn
    intermediary: PartyIn | None = None


class CertifyIn(Strict):
    certified_at: AwareDatetime | None = Field(None, description="RFC 3339 with offset; defaults to now")
    technology_amount: Money | None = Field(None, description="As verified by the point")
    expert_review_ref: str | None = Field(None, max_length=100)


class RejectIn(Strict):
    reason_code: str = Field(min_length=1, max_length=50)
    reason: str = Field(min_length=1, max_length=2000)


class WithdrawIn(Strict):
    reason: str | None = Field(None, max_length=2000)


def _no_explicit_nulls(model: BaseModel, fields: tuple[str, ...]) -> None:
    """Only `subcategory` may be set to null (a consulting or service contract may have none); a null for
    anything else would erase a required value."""
    nulled = [f for f in fields if f in model.model_fields_set and getattr(model, f) is None]
    if nulled:
        raise ValueError(f"{', '.join(nulled)} may not be null; leave a field out to keep it")


class PartyChangeIn(Strict):
    name: str | None = Field(None, min_length=1, max_length=200)
    region: str | None = None

    @model_validator(mode="after")
    def _nulls(self):
        _no_explicit_nulls(self, ("name", "region"))
        return self


class ChangesIn(Strict):
    title: str | None = Field(None, min_length=1, max_length=300)
    category: str | None = None
    subcategory: str | None = None
    amount: Money | None = None
    technology_amount: Money | None = None
    seller: PartyChangeIn | None = None
    buyer: PartyChangeIn | None = None
    intermediary: PartyChangeIn | None = None

    @model_validator(mode="after")
    def _nulls(self):
        _no_explicit_nulls(
            self, ("title", "category", "amount", "technology_amount", "seller", "buyer", "intermediary")
        )
        return self


class AmendIn(Strict):
    reason: str = Field(min_length=1, max_length=2000)
    changes: ChangesIn
    expert_review_ref: str | None = Field(None, max_length=100)


class RevokeIn(Strict):
    reason: str = Field(min_length=1, max_length=2000)


class PointIn(Strict):
    number: str = Field(pattern=r"^\d{2}$", description="Two digits, unique within the jurisdiction")
    name: str = Field(min_length=1, max_length=200)
    jurisdiction: str = Field(pattern=r"^64(00|0[1-5])$", description="6401..6405 (a prefecture) or 6400 (region)")


class ApiKeyIn(Strict):
    role: Literal["point", "partner", "analyst", "admin"]
    point_id: str | None = None
    label: str | None = Field(None, max_length=200)
