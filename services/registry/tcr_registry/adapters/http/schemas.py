"""Request bodies. Shapes and types are checked here, and the edge rules that keep hostile input out of every
store downstream: the one text rule (tcr_shared.language.text: NFC, no control, bidi or zero-width characters)
for every name, title, reason, label and reference, and sane date bounds. The domain checks the rules
(categories, credit codes, regions, amounts that must add up) so that the same rules hold for every way a contract
arrives."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from tcr_registry.domain.terms import Party, Terms
from tcr_shared.language.money import parse_money
from tcr_shared.language.policy_time import SHANGHAI
from tcr_shared.language.text import EARLIEST_SIGNED_ON, Name, Reason, text_type
from tcr_shared.language.vocabulary import Consideration, PartyKind


def _money(value: object) -> str:
    parse_money(value)  # raises with a message that says what money looks like
    return value  # type: ignore[return-value]


Money = Annotated[str, BeforeValidator(_money), Field(examples=["9000000.00"])]


def _signed_on(value: date) -> date:
    if value < EARLIEST_SIGNED_ON:
        raise ValueError(f"must not be before {EARLIEST_SIGNED_ON.isoformat()} (the first technology contract rules)")
    return value


def _instant(value: datetime) -> datetime:
    """A certification time the registry can compute with: one that exists in UTC and in Shanghai time (Python
    overflows past year 9999 or before year 1) and is not before the earliest signing date. Whether it is in the
    future, before signing or out of number order is the domain's to say."""
    try:
        value.astimezone(UTC), value.astimezone(SHANGHAI)
    except OverflowError:
        raise ValueError("is outside the range of dates the registry records") from None
    if value.astimezone(SHANGHAI).date() < EARLIEST_SIGNED_ON:
        raise ValueError(f"must not be before {EARLIEST_SIGNED_ON.isoformat()} (no contract is signed earlier)")
    return value


SignedOn = Annotated[date, AfterValidator(_signed_on)]
CertifiedAt = Annotated[AwareDatetime, AfterValidator(_instant)]
Title = text_type(300)
Label = text_type(200)
Reference = text_type(100)  # result ids, expert review references, reason codes


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class PartyIn(Strict):
    name: Name
    kind: PartyKind
    credit_code: str | None = Field(None, description="统一社会信用代码, 18 characters with check digit")
    region: str | None = Field(None, description="GB/T 2260 six-digit code")
    country: str | None = Field(None, description="ISO 3166-1 alpha-2, foreign parties only")
    id_number: str | None = Field(None, description="Resident identity number, individuals only")


class ContractIn(Strict):
    title: Title
    category: str
    subcategory: str | None = None
    signed_on: SignedOn
    amount: Money
    technology_amount: Money
    consideration: Consideration = "money"
    result_id: Reference | None = None
    seller: PartyIn
    buyer: PartyIn
    intermediary: PartyIn | None = None

    def terms(self) -> Terms:
        """The domain's terms (which keep credit codes and the result id in their canonical form)."""

        def party(p: PartyIn | None) -> Party | None:
            return None if p is None else Party.from_record(p.model_dump())

        return Terms(
            title=self.title,
            category=self.category,
            subcategory=self.subcategory,
            signed_on=self.signed_on,
            amount=parse_money(self.amount),
            technology_amount=parse_money(self.technology_amount),
            consideration=self.consideration,
            result_id=self.result_id,
            seller=party(self.seller),
            buyer=party(self.buyer),
            intermediary=party(self.intermediary),
        )


class CertifyIn(Strict):
    certified_at: CertifiedAt | None = Field(
        None,
        description="RFC 3339 with offset; defaults to now. Not in the future, not before signed_on, and not earlier "
        "than the point's last numbered certification of that year",
    )
    technology_amount: Money | None = Field(None, description="As verified by the point")
    expert_review_ref: Reference | None = None


class RejectIn(Strict):
    reason_code: text_type(50)
    reason: Reason


class WithdrawIn(Strict):
    reason: Reason | None = None


def _no_explicit_nulls(model: BaseModel, fields: tuple[str, ...]) -> None:
    """Only `subcategory` may be set to null (a consulting or service contract may have none); a null for
    anything else would erase a required value."""
    nulled = [f for f in fields if f in model.model_fields_set and getattr(model, f) is None]
    if nulled:
        raise ValueError(f"{', '.join(nulled)} may not be null; leave a field out to keep it")


class PartyChangeIn(Strict):
    name: Name | None = None
    region: str | None = None

    @model_validator(mode="after")
    def _nulls(self):
        _no_explicit_nulls(self, ("name", "region"))
        return self


class ChangesIn(Strict):
    title: Title | None = None
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
    reason: Reason
    changes: ChangesIn
    expert_review_ref: Reference | None = None


class RevokeIn(Strict):
    reason: Reason


class PointIn(Strict):
    number: str = Field(pattern=r"^\d{2}$", description="Two digits, unique within the jurisdiction")
    name: Name
    jurisdiction: str = Field(pattern=r"^64(00|0[1-5])$", description="6401..6405 (a prefecture) or 6400 (region)")


class ApiKeyIn(Strict):
    role: Literal["point", "partner", "analyst", "admin"]
    point_id: Reference | None = None
    label: Label | None = None
