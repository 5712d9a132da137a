"""Which parties a certified contract entitles, under which programme, and why every other party was not
(policy README, "How an award is decided": category, kind, region, credit code, no stacking)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, NamedTuple

from tcr_shared.language.money import round_fen
from tcr_subsidy.domain.rules import ProgrammeRule, RuleSet
from tcr_subsidy.domain.terms import Party, Terms


class Candidate(NamedTuple):
    """A party this contract entitles under one programme. A named tuple: one is built per award decided, and a
    tuple is built several times quicker than a frozen dataclass (which sets each field through object.__setattr__)."""

    rule: ProgrammeRule
    party: Party
    base: Decimal
    entitlement: Decimal
    cap_key: str
    project: str | None


def cap_key_for(
    rule: ProgrammeRule, beneficiary: str, year: int, result_id: str | None, contract_id: str
) -> tuple[str, str | None]:
    """The cap an award counts against: per beneficiary per policy year, or per beneficiary per project (the
    technology result, else the contract) over all years."""
    if rule.cap_scope == "policy_year":
        return f"{rule.programme}|{beneficiary}|year:{year}", None
    project = f"result:{result_id}" if result_id else f"contract:{contract_id}"
    return f"{rule.programme}|{beneficiary}|{project}", project


def could_be(rs: RuleSet, role: str, kind: str) -> str | None:
    """The programme a party of this role and kind qualifies for, if any (so that a university seller is not
    reported as failing export_enterprise when it qualifies for export_institution)."""
    return next((p.programme for p in rs.programmes if p.role == role and kind in p.kinds), None)


def candidates(
    rs: RuleSet, terms: Terms, contract_id: str, year: int, *, explain: bool = True
) -> tuple[list[Candidate], list[dict[str, Any]]]:
    """Which parties this contract entitles under which programme, and why every other one was not (with
    `explain=False`, as a simulation asks: the same parties, and no reasons, which only explanations read)."""
    considered: list[dict[str, Any]] = []
    if terms.category not in rs.eligible_categories:
        if not explain:
            return [], considered
        considered.append(
            {
                "programme": None,
                "party": None,
                "eligible": False,
                "reason": (
                    f"category {terms.category} earns no subsidy under {rs.id} "
                    f"(only {', '.join(rs.eligible_categories)} do)"
                ),
            }
        )
        return [], considered
    found: list[Candidate] = []
    taken: dict[str, str] = {}
    for rule in rs.programmes:
        party: Party | None = getattr(terms, rule.role)
        if party is None:
            continue  # no intermediary: brokerage is not considered at all
        refusal = _refusal(rs, rule, party, taken)
        if refusal is None:
            code = party.credit_code or ""
            base = Decimal(getattr(terms, rule.base))
            key, project = cap_key_for(rule, code, year, terms.result_id, contract_id)
            found.append(Candidate(rule, party, base, round_fen(rule.rate * base), key, project))
            taken[code] = rule.programme
            if explain:
                considered.append(
                    {"programme": rule.programme, "party": rule.role, "eligible": True, "beneficiary": code}
                )
        elif explain:  # the reasons are worded only when asked: a simulation decides the same parties without them
            reason = _reason(refusal, rs, rule, party, taken)
            if reason is not None:
                considered.append(
                    {"programme": rule.programme, "party": rule.role, "eligible": False, "reason": reason}
                )
    return found, considered


def _refusal(rs: RuleSet, rule: ProgrammeRule, party: Party, taken: dict[str, str]) -> str | None:
    """The first check `party` fails under `rule` (kind, region, credit code, no stacking), or None when it is a
    beneficiary."""
    if party.kind not in rule.kinds:
        return "kind"
    if not party.region or not party.region.startswith(rs.region_prefix):
        return "region"
    if not party.credit_code:
        return "credit_code"
    if party.credit_code in taken:
        return "stacking"
    return None


def _reason(refusal: str, rs: RuleSet, rule: ProgrammeRule, party: Party, taken: dict[str, str]) -> str | None:
    """A refusal in words, or None when it is not worth saying (a party of the wrong kind for this programme that
    qualifies under another one for its role)."""
    if refusal == "kind":
        if rule.role == "intermediary" or could_be(rs, rule.role, party.kind) is None:
            return f"{rule.role} is of kind {party.kind}; {rule.programme} needs {' or '.join(rule.kinds)}"
        return None
    if refusal == "region":
        where = party.region or f"country {party.country}"
        return f"{rule.role} is registered in {where}, outside Ningxia ({rs.region_prefix}xxxx)"
    if refusal == "credit_code":
        return f"{rule.role} carries no unified social credit code"
    return (
        f"no stacking (clause 十五): {party.credit_code} already benefits under "
        f"{taken[party.credit_code]} for this contract"
    )
