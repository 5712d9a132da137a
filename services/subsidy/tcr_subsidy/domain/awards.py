"""How an award is decided (policy README, "How an award is decided"). Pure: no I/O, no clock.

`Engine.apply(state, event)` takes one registry event, changes `state` (awards, cap usage, contract records) and
returns the award events it decided. Everything is deterministic: the same events in the same order give the same
state and the same award events (ids included), to the fen.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from tcr_shared.language.events.registry import ContractTerms, PublicParty
from tcr_shared.language.identifiers import uuid5_text
from tcr_shared.language.money import ZERO, format_money, round_fen
from tcr_shared.language.policy_time import SHANGHAI, policy_year
from tcr_subsidy.domain.rules import PROGRAMMES, ProgrammeRule, RuleBook, RuleSet

AWARD_NAMESPACE = uuid.UUID("6f1c9a52-3b0e-4c55-9d67-2f4b8e1d7a10")
DECIDED = "tcr.subsidy.award.decided.v1"
ADJUSTED = "tcr.subsidy.award.adjusted.v1"
CLAWED_BACK = "tcr.subsidy.award.clawed_back.v1"

SUBMITTED = "tcr.registry.contract.submitted.v1"
CERTIFIED = "tcr.registry.contract.certified.v1"
REJECTED = "tcr.registry.contract.rejected.v1"
WITHDRAWN = "tcr.registry.contract.withdrawn.v1"
AMENDED = "tcr.registry.contract.amended.v1"
REVOKED = "tcr.registry.contract.revoked.v1"
KNOWN_TYPES = frozenset({SUBMITTED, CERTIFIED, REJECTED, WITHDRAWN, AMENDED, REVOKED})


class UnknownEventType(Exception):
    """An event type this service does not know: recorded and skipped, never a crash."""


class MalformedEvent(Exception):
    """A known event type whose data does not match its schema."""


class NotPreloaded(RuntimeError):
    """A cap the application did not preload: a bug that must fail the page, never skip an event."""


@dataclass(frozen=True)
class RegistryEvent:
    id: str
    type: str
    position: int
    time: str
    contract_id: str
    data: dict[str, Any]


@dataclass
class ContractRecord:
    contract_id: str
    status: str
    registration_number: str | None = None
    policy_year: int | None = None
    rule_set: str | None = None
    certified_at: str | None = None
    result_id: str | None = None
    cause_position: int = 0
    explanation: str = ""
    considered: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Award:
    award_id: str
    contract_id: str
    registration_number: str | None
    beneficiary: str
    beneficiary_name: str | None
    beneficiary_kind: str
    beneficiary_region: str
    programme: str
    policy_year: int
    rule_set: str
    clause: str
    cap_key: str
    project: str | None
    base: Decimal
    rate: Decimal
    entitlement: Decimal
    award: Decimal
    status: str
    cap: Decimal
    explanation: str
    decided_position: int
    updated_position: int


@dataclass
class CapUsage:
    key: str
    programme: str
    beneficiary: str
    policy_year: int | None
    project: str | None
    used: Decimal = ZERO


@dataclass(frozen=True)
class AwardEvent:
    id: str
    type: str
    time: str
    subject: str
    award_id: str
    cause_position: int
    data: dict[str, Any]


class State:
    """What the engine reads and changes. The application preloads what a page needs from the database and
    writes back the dirty parts; tests use it purely in memory. In strict mode, reading a cap that was not
    preloaded is a bug (it would silently count from zero), so it raises."""

    def __init__(self, *, strict: bool = False) -> None:
        self.contracts: dict[str, ContractRecord] = {}
        self.awards: dict[str, Award] = {}
        self.by_contract: dict[str, list[str]] = {}
        self.caps: dict[str, CapUsage] = {}
        self.loaded_cap_keys: set[str] = set()
        self.strict = strict
        self.dirty_contracts: set[str] = set()
        self.dirty_awards: set[str] = set()
        self.dirty_caps: set[str] = set()

    def add_award(self, award: Award) -> None:
        self.awards[award.award_id] = award
        self.by_contract.setdefault(award.contract_id, []).append(award.award_id)
        self.dirty_awards.add(award.award_id)

    def awards_of(self, contract_id: str) -> list[Award]:
        """A contract's awards in a fixed order (when decided, then programme order), however they were loaded."""
        found = [self.awards[a] for a in self.by_contract.get(contract_id, [])]
        return sorted(found, key=lambda a: (a.decided_position, PROGRAMMES.index(a.programme), a.beneficiary))

    def cap(self, key: str, programme: str, beneficiary: str, year: int | None, project: str | None) -> CapUsage:
        usage = self.caps.get(key)
        if usage is None:
            if self.strict and key not in self.loaded_cap_keys:
                raise NotPreloaded(f"cap {key} was not preloaded")
            usage = self.caps[key] = CapUsage(key, programme, beneficiary, year, project)
        return usage

    def mark_contract(self, record: ContractRecord) -> None:
        self.contracts[record.contract_id] = record
        self.dirty_contracts.add(record.contract_id)

    def clear_dirty(self) -> None:
        self.dirty_contracts.clear()
        self.dirty_awards.clear()
        self.dirty_caps.clear()


@dataclass(frozen=True)
class Candidate:
    rule: ProgrammeRule
    party: PublicParty
    base: Decimal
    entitlement: Decimal
    cap_key: str
    project: str | None


def _uuid5(name: str) -> str:
    return uuid5_text(AWARD_NAMESPACE, name)


def award_id_for(contract_id: str, programme: str, beneficiary: str) -> str:
    return _uuid5(f"{contract_id}|{programme}|{beneficiary}")


def cap_key_for(
    rule: ProgrammeRule, beneficiary: str, year: int, result_id: str | None, contract_id: str
) -> tuple[str, str | None]:
    if rule.cap_scope == "policy_year":
        return f"{rule.programme}|{beneficiary}|year:{year}", None
    project = f"result:{result_id}" if result_id else f"contract:{contract_id}"
    return f"{rule.programme}|{beneficiary}|{project}", project


def _pct(rate: Decimal) -> str:
    return f"{(rate * 100).normalize():f}%"


def candidates(
    rs: RuleSet, terms: ContractTerms, contract_id: str, year: int
) -> tuple[list[Candidate], list[dict[str, Any]]]:
    """Which parties this contract entitles under which programme, and why every other one was not."""
    considered: list[dict[str, Any]] = []
    if terms.category not in rs.eligible_categories:
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
        party: PublicParty | None = getattr(terms, rule.role)
        entry: dict[str, Any] = {"programme": rule.programme, "party": rule.role, "eligible": False}
        if party is None:
            continue  # no intermediary: brokerage is not considered at all
        if party.kind not in rule.kinds:
            if rule.role == "intermediary" or _could_be(rs, rule.role, party.kind) is None:
                entry["reason"] = (
                    f"{rule.role} is of kind {party.kind}; {rule.programme} needs {' or '.join(rule.kinds)}"
                )
                considered.append(entry)
            continue
        if not party.region or not party.region.startswith(rs.region_prefix):
            where = party.region or f"country {party.country}"
            entry["reason"] = f"{rule.role} is registered in {where}, outside Ningxia ({rs.region_prefix}xxxx)"
            considered.append(entry)
            continue
        if not party.credit_code:
            entry["reason"] = f"{rule.role} carries no unified social credit code"
            considered.append(entry)
            continue
        if party.credit_code in taken:
            entry["reason"] = (
                f"no stacking (clause 十五): {party.credit_code} already benefits under "
                f"{taken[party.credit_code]} for this contract"
            )
            considered.append(entry)
            continue
        base = Decimal(getattr(terms, rule.base))
        entitlement = round_fen(rule.rate * base)
        key, project = cap_key_for(rule, party.credit_code, year, terms.result_id, contract_id)
        found.append(Candidate(rule, party, base, entitlement, key, project))
        taken[party.credit_code] = rule.programme
        entry.update(eligible=True, beneficiary=party.credit_code)
        considered.append(entry)
    return found, considered


def _could_be(rs: RuleSet, role: str, kind: str) -> str | None:
    """The programme a party of this role and kind qualifies for, if any (to avoid reporting that a university
    seller does not qualify for export_enterprise when it qualifies for export_institution)."""
    key = (id(rs), role, kind)
    found = _COULD_BE.get(key, _UNKNOWN)
    if found is _UNKNOWN:
        found = next((p.programme for p in rs.programmes if p.role == role and kind in p.kinds), None)
        if len(_COULD_BE) > 10_000:
            _COULD_BE.clear()
        _COULD_BE[key] = found
        _KEEP_ALIVE[id(rs)] = rs  # the id stays this rule set's while the cache holds it
    return found


_UNKNOWN = object()
_COULD_BE: dict[tuple[int, str, str], str | None] = {}
_KEEP_ALIVE: dict[int, RuleSet] = {}


def explain_none(considered: list[dict[str, Any]]) -> str:
    reasons = [c["reason"] for c in considered if not c.get("eligible")]
    return "; ".join(reasons) if reasons else "no party of this contract is a beneficiary under any programme"


class Engine:
    def __init__(self, rulebook: RuleBook) -> None:
        self.rulebook = rulebook
        self._rules: dict[tuple[str, str], ProgrammeRule | None] = {}

    def _rule(self, rule_set: str, programme: str) -> ProgrammeRule | None:
        key = (rule_set, programme)
        try:
            return self._rules[key]
        except KeyError:
            rule = self._rules[key] = self.rulebook.by_id(rule_set).programme(programme)
            return rule

    # -- preloading support -------------------------------------------------------------------------------
    def cap_keys(self, event: RegistryEvent, year: int | None = None) -> set[str]:
        """Every cap key `event` could touch through its terms (an over-approximation; the keys of the
        contract's existing awards must be added by the caller). `year` is the contract's policy year when the
        caller knows it (an amendment's own `policy_year` may be null)."""
        if event.type not in (CERTIFIED, AMENDED):
            return set()
        keys: set[str] = set()
        year = year if year is not None else event.data.get("policy_year")
        if event.type == CERTIFIED and event.data.get("certified_at"):
            try:
                year = policy_year(datetime.fromisoformat(event.data["certified_at"]))
            except ValueError:
                pass
        if not isinstance(year, int):
            return keys
        for terms_key in ("terms", "previous_terms"):
            terms = event.data.get(terms_key)
            if not isinstance(terms, dict):
                continue
            for rs in self.rulebook.rule_sets:
                for rule in rs.programmes:
                    party = terms.get(rule.role)
                    if (
                        isinstance(party, dict)
                        and party.get("credit_code")
                        and party.get("kind") in rule.kinds
                        and str(party.get("region") or "").startswith(rs.region_prefix)
                    ):
                        keys.add(
                            cap_key_for(rule, party["credit_code"], year, terms.get("result_id"), event.contract_id)[0]
                        )
        return keys

    # -- the decision ---------------------------------------------------------------------------------------
    def certified_year(self, event: RegistryEvent) -> int | None:
        try:
            return policy_year(datetime.fromisoformat(event.data["certified_at"]))
        except (KeyError, TypeError, ValueError):
            return None

    def apply(self, state: State, event: RegistryEvent) -> list[AwardEvent]:
        if event.type not in KNOWN_TYPES:
            raise UnknownEventType(event.type)
        try:
            if event.type == CERTIFIED:
                return self._certified(state, event)
            if event.type == AMENDED:
                return self._amended(state, event)
            if event.type == REVOKED:
                return self._revoked(state, event)
            self._status_only(state, event)
            return []
        except (ValidationError, KeyError, ValueError, TypeError) as exc:
            raise MalformedEvent(f"{event.type} at position {event.position}: {exc}") from exc

    def _status_only(self, state: State, event: RegistryEvent) -> None:
        record = state.contracts.get(event.contract_id)
        status = {SUBMITTED: "submitted", REJECTED: "rejected", WITHDRAWN: "withdrawn"}[event.type]
        if record is None:
            record = ContractRecord(
                event.contract_id,
                status,
                cause_position=event.position,
                explanation=f"not certified (status {status}); only certified contracts earn subsidies",
            )
        elif record.status in ("certified", "revoked"):
            return  # a late or out-of-order event cannot undo a certification
        else:
            record.status = status
            record.cause_position = event.position
            record.explanation = f"not certified (status {status}); only certified contracts earn subsidies"
        state.mark_contract(record)

    def _certified(self, state: State, event: RegistryEvent) -> list[AwardEvent]:
        record = state.contracts.get(event.contract_id)
        if record is not None and record.status in ("certified", "revoked"):
            return []  # certified once only; a repeat changes nothing
        terms = ContractTerms.model_validate(event.data["terms"])
        certified_at = datetime.fromisoformat(event.data["certified_at"])
        year = policy_year(certified_at)
        registration_number = event.data.get("registration_number")
        record = ContractRecord(
            event.contract_id,
            "certified",
            registration_number,
            year,
            certified_at=event.data["certified_at"],
            result_id=terms.result_id,
            cause_position=event.position,
        )
        rs = self.rulebook.in_force_at(certified_at)
        if rs is None:
            record.explanation = (
                f"no rule set was in force on {certified_at.astimezone(SHANGHAI).date()} (Asia/Shanghai)"
            )
            state.mark_contract(record)
            return []
        record.rule_set = rs.id
        found, considered = candidates(rs, terms, event.contract_id, year)
        record.considered = considered
        out = [self._decide(state, event, rs, c, year, registration_number, "certified") for c in found]
        record.explanation = f"{len(out)} award(s) decided under {rs.id}" if out else explain_none(considered)
        state.mark_contract(record)
        return out

    def _decide(
        self,
        state: State,
        event: RegistryEvent,
        rs: RuleSet,
        c: Candidate,
        year: int,
        registration_number: str | None,
        why: str,
    ) -> AwardEvent:
        rule, party = c.rule, c.party
        usage = state.cap(
            c.cap_key, rule.programme, party.credit_code or "", year if c.project is None else None, c.project
        )
        before = usage.used
        amount = min(c.entitlement, max(ZERO, rule.cap - before))
        usage.used = before + amount
        state.dirty_caps.add(usage.key)
        status = "full" if amount == c.entitlement else "capped"
        award = Award(
            award_id=award_id_for(event.contract_id, rule.programme, party.credit_code or ""),
            contract_id=event.contract_id,
            registration_number=registration_number,
            beneficiary=party.credit_code or "",
            beneficiary_name=party.name,
            beneficiary_kind=party.kind,
            beneficiary_region=party.region or "",
            programme=rule.programme,
            policy_year=year,
            rule_set=rs.id,
            clause=rule.clause,
            cap_key=c.cap_key,
            project=c.project,
            base=c.base,
            rate=rule.rate,
            entitlement=c.entitlement,
            award=amount,
            status=status,
            cap=rule.cap,
            explanation="",
            decided_position=event.position,
            updated_position=event.position,
        )
        award.explanation = self._explain(award, event, before, usage.used, ZERO, why)
        state.add_award(award)
        return self._event(DECIDED, award, event, before, usage.used, amount, None)

    def _amended(self, state: State, event: RegistryEvent) -> list[AwardEvent]:
        record = state.contracts.get(event.contract_id)
        if record is None or record.status != "certified" or record.rule_set is None:
            return []  # amending a contract that is not (or no longer) certified pays nothing
        terms = ContractTerms.model_validate(event.data["terms"])
        rs = self.rulebook.by_id(record.rule_set)
        year = record.policy_year
        found, considered = candidates(rs, terms, event.contract_id, year)
        if event.data.get("registration_number"):
            record.registration_number = event.data["registration_number"]
        by_programme = {(c.rule.programme, c.party.credit_code): c for c in found}
        existing = state.awards_of(event.contract_id)
        out: list[AwardEvent] = []
        reasons = {c["programme"]: c.get("reason") for c in considered if not c.get("eligible")}
        for award in existing:
            if (award.programme, award.beneficiary) in by_programme:
                continue
            if award.award == ZERO and award.status == "clawed_back":
                continue
            why = reasons.get(award.programme) or reasons.get(None) or "no longer eligible"
            out.append(self._claw_back(state, award, event, f"amendment: {why}"))
        current = {(a.programme, a.beneficiary): a for a in existing}
        for c in found:
            award = current.get((c.rule.programme, c.party.credit_code))
            if award is None:
                out.append(self._decide(state, event, rs, c, year, record.registration_number, "amended"))
            else:
                adjusted = self._adjust(state, award, c, event, record.registration_number)
                if adjusted is not None:
                    out.append(adjusted)
        record.considered = considered
        record.result_id = terms.result_id
        record.cause_position = event.position
        live = [a for a in state.awards_of(event.contract_id) if a.status != "clawed_back"]
        record.explanation = f"{len(live)} award(s) under {rs.id} after amendment" if live else explain_none(considered)
        state.mark_contract(record)
        return out

    def _adjust(
        self, state: State, award: Award, c: Candidate, event: RegistryEvent, registration_number: str | None
    ) -> AwardEvent | None:
        rule = c.rule
        usage = state.cap(
            award.cap_key,
            award.programme,
            award.beneficiary,
            award.policy_year if award.project is None else None,
            award.project,
        )
        before = usage.used
        previous = award.award
        new = min(c.entitlement, max(ZERO, award.cap - before + previous))
        status = "full" if new == c.entitlement else "capped"
        changed = (
            new != previous
            or c.entitlement != award.entitlement
            or status != award.status
            or c.party.name != award.beneficiary_name
            or (c.party.region or "") != award.beneficiary_region
            or c.party.kind != award.beneficiary_kind
        )
        if not changed:
            return None
        usage.used = before - previous + new
        state.dirty_caps.add(usage.key)
        award.base, award.entitlement, award.award, award.status = c.base, c.entitlement, new, status
        award.beneficiary_name, award.beneficiary_region = c.party.name, c.party.region or ""
        award.beneficiary_kind = c.party.kind
        award.rate = rule.rate
        award.registration_number = registration_number
        award.updated_position = event.position
        award.explanation = self._explain(award, event, before, usage.used, previous, "amended")
        state.dirty_awards.add(award.award_id)
        return self._event(ADJUSTED, award, event, before, usage.used, new - previous, previous)

    def _revoked(self, state: State, event: RegistryEvent) -> list[AwardEvent]:
        record = state.contracts.get(event.contract_id)
        if record is None or record.status != "certified":
            if record is not None and record.status != "revoked":
                record.status = "revoked"
                record.cause_position = event.position
                state.mark_contract(record)
            return []
        out = [
            self._claw_back(state, a, event, f"revoked: {event.data.get('reason', '')}".strip())
            for a in state.awards_of(event.contract_id)
            if not (a.status == "clawed_back" and a.award == ZERO)
        ]
        record.status = "revoked"
        record.cause_position = event.position
        record.explanation = f"revoked at registry position {event.position}; every award clawed back"
        state.mark_contract(record)
        return out

    def _claw_back(self, state: State, award: Award, event: RegistryEvent, why: str) -> AwardEvent:
        usage = state.cap(
            award.cap_key,
            award.programme,
            award.beneficiary,
            award.policy_year if award.project is None else None,
            award.project,
        )
        before = usage.used
        previous = award.award
        usage.used = before - previous
        state.dirty_caps.add(usage.key)
        award.award = ZERO
        award.status = "clawed_back"
        award.updated_position = event.position
        award.explanation = self._explain(award, event, before, usage.used, previous, why)
        state.dirty_awards.add(award.award_id)
        return self._event(CLAWED_BACK, award, event, before, usage.used, -previous, previous)

    # -- explanation and event ----------------------------------------------------------------------------
    def _explain(
        self, a: Award, event: RegistryEvent, before: Decimal, after: Decimal, previous: Decimal, why: str
    ) -> str:
        scope = (
            f"per beneficiary per policy year {a.policy_year}"
            if a.project is None
            else f"per beneficiary per project {a.project}, over all years"
        )
        cause = f"Cause: {event.type} {event.id} at registry position {event.position}."
        if a.status == "clawed_back":
            return (
                f"{a.programme} (clause {a.clause}, rule set {a.rule_set}) for {a.beneficiary}: award "
                f"{format_money(previous)} clawed back to 0.00 ({why}). Cap {format_money(a.cap)} {scope}: "
                f"used {format_money(before)} before, {format_money(after)} after. {cause}"
            )
        rule = self._rule(a.rule_set, a.programme)
        rule_text = (
            f"base {rule.base if rule else 'amount'} "
            f"{format_money(a.base)} x rate {a.rate} ({_pct(a.rate)}) = entitlement "
            f"{format_money(a.entitlement)} (half-up to the fen)"
        )
        left = a.cap - before + previous
        if why == "certified" or why == "amended" and previous == ZERO and a.decided_position == event.position:
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

    @staticmethod
    def _event(
        type_: str,
        a: Award,
        event: RegistryEvent,
        before: Decimal,
        after: Decimal,
        delta: Decimal,
        previous: Decimal | None,
    ) -> AwardEvent:
        data: dict[str, Any] = {
            "award_id": a.award_id,
            "contract_id": a.contract_id,
            "registration_number": a.registration_number,
            "beneficiary": a.beneficiary,
            "beneficiary_name": a.beneficiary_name,
            "beneficiary_kind": a.beneficiary_kind,
            "beneficiary_region": a.beneficiary_region,
            "programme": a.programme,
            "policy_year": a.policy_year,
            "rule_set": a.rule_set,
            "clause": a.clause,
            "base": format_money(a.base),
            "rate": str(a.rate),
            "entitlement": format_money(a.entitlement),
            "award": format_money(a.award),
            "delta": format_money(delta if delta != 0 else ZERO),
            "status": a.status,
            "cap": format_money(a.cap),
            "cap_used_before": format_money(before),
            "cap_used_after": format_money(after),
            "cause": {"event_id": event.id, "event_type": event.type, "position": event.position},
            "explanation": a.explanation,
        }
        if previous is not None:
            data["previous_award"] = format_money(previous)
        event_id = _uuid5(f"{event.id}|{a.award_id}|{type_}")
        return AwardEvent(event_id, type_, event.time, a.contract_id, a.award_id, event.position, data)
