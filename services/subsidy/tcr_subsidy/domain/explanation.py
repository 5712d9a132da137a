"""The prose that explains a decision to the fen: why an award is what it is, or why a contract earned none."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tcr_shared.language.money import ZERO, format_money
from tcr_subsidy.domain.ledger import Award
from tcr_subsidy.domain.rules import ProgrammeRule


def percent(rate: Decimal) -> str:
    return f"{(rate * 100).normalize():f}%"


def explain_none(considered: list[dict[str, Any]]) -> str:
    reasons = [c["reason"] for c in considered if not c.get("eligible")]
    return "; ".join(reasons) if reasons else "no party of this contract is a beneficiary under any programme"


def explain_award(
    a: Award,
    rule: ProgrammeRule | None,
    cause: str,
    before: Decimal,
    after: Decimal,
    previous: Decimal,
    why: str,
    *,
    first_decision: bool,
    held_from: Decimal | None = None,
) -> str:
    """`cause` names the registry event; `first_decision` is true when the award is decided now (nothing earlier
    to add back to the cap left); `held_from` is the entitlement before an amendment that did not raise it (the
    award then cannot rise)."""
    scope = (
        f"per beneficiary per policy year {a.policy_year}"
        if a.project is None
        else f"per beneficiary per project {a.project}, over all years"
    )
    if a.status == "clawed_back":
        return (
            f"{a.programme} (clause {a.clause}, rule set {a.rule_set}) for {a.beneficiary}: award "
            f"{format_money(previous)} clawed back to 0.00 ({why}). Cap {format_money(a.cap)} {scope}: "
            f"used {format_money(before)} before, {format_money(after)} after. {cause}"
        )
    rule_text = (
        f"base {rule.base if rule else 'amount'} "
        f"{format_money(a.base)} x rate {a.rate} ({percent(a.rate)}) = entitlement "
        f"{format_money(a.entitlement)} (half-up to the fen)"
    )
    left = a.cap - before + previous
    if held_from is not None:
        formula = (
            f"entitlement not higher than before the amendment ({format_money(held_from)}), so an amendment "
            f"never raises the award: award = min(entitlement, current award {format_money(previous)})"
        )
    elif first_decision:
        formula = f"award = min(entitlement, cap left {format_money(max(ZERO, a.cap - before))})"
    else:
        formula = (
            f"award = min(entitlement, cap left {format_money(max(ZERO, a.cap - before))} + "
            f"current award {format_money(previous)} = {format_money(max(ZERO, left))})"
        )
    return (
        f"{a.programme} (clause {a.clause}, rule set {a.rule_set}), policy year {a.policy_year}: "
        f"{a.beneficiary} ({a.beneficiary_kind}, {a.beneficiary_region}); {rule_text}; {formula} = "
        f"{format_money(a.award)} ({a.status}). Cap {format_money(a.cap)} {scope}: used "
        f"{format_money(before)} before, {format_money(after)} after. {cause}"
    )
