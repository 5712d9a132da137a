"""Hand-made registry feed events (the shape of shared/events/registry.py) for domain and projection tests,
and a plain reference computation of the policy README's award rules to compare the service against."""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from tcr_shared.language.events.envelope import FeedEvent
from tcr_shared.language.identifiers import credit_code_with_check_digit

CST = timezone(timedelta(hours=8))


def code(n: int, prefix: str = "916401") -> str:
    """A valid unified social credit code, distinct per n."""
    return credit_code_with_check_digit(f"{prefix}{n:011d}")


def party(kind: str = "enterprise", n: int = 1, region: str = "640104", name: str | None = None) -> dict:
    if kind == "foreign":
        return {"name": name or f"Foreign {n}", "kind": "foreign", "credit_code": None, "region": None, "country": "DE"}
    if kind == "individual":
        return {"name": None, "kind": "individual", "credit_code": None, "region": region, "country": None}
    prefix = {"enterprise": "916401", "university": "126401", "research_institute": "126402"}.get(kind, "516401")
    return {
        "name": name or f"{kind} {n}",
        "kind": kind,
        "credit_code": code(n, prefix),
        "region": region,
        "country": None,
    }


def terms(
    *,
    category: str = "licence",
    amount: str = "1000000.00",
    technology_amount: str | None = None,
    seller: dict | None = None,
    buyer: dict | None = None,
    intermediary: dict | None = None,
    result_id: str | None = None,
    subcategory: str | None = "patent_ordinary",
    signed_on: str = "2025-01-02",
) -> dict:
    return {
        "title": "contract",
        "category": category,
        "subcategory": subcategory,
        "signed_on": signed_on,
        "amount": amount,
        "technology_amount": technology_amount or amount,
        "consideration": "money",
        "result_id": result_id,
        "seller": seller or party("university", 900, "640105"),
        "buyer": buyer or party("enterprise", 1),
        "intermediary": intermediary,
    }


@dataclass
class History:
    """Builds a registry feed: each call appends one event with the next position."""

    events: list[FeedEvent] = field(default_factory=list)
    terms: dict[str, dict] = field(default_factory=dict)
    seq: int = 0

    def _add(self, type_: str, contract_id: str, data: dict, moment: datetime) -> FeedEvent:
        position = len(self.events) + 1
        event = FeedEvent(
            id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"tcr-test/{position}/{contract_id}")),
            source="/tcr/registry",
            type=f"tcr.registry.contract.{type_}.v1",
            time=moment.isoformat(),
            subject=contract_id,
            position=position,
            data={"contract_id": contract_id, "point_id": "p1", **data},
        )
        self.events.append(event)
        return event

    def submit(self, t: dict, contract_id: str | None = None) -> str:
        contract_id = contract_id or str(uuid.uuid4())
        self.terms[contract_id] = copy.deepcopy(t)
        self._add(
            "submitted",
            contract_id,
            {"status": "submitted", "terms": t, "submitted_at": "2025-01-02T10:00:00+08:00"},
            datetime(2025, 1, 2, 10, tzinfo=CST),
        )
        return contract_id

    def certify(self, contract_id: str, at: datetime) -> FeedEvent:
        self.seq += 1
        year = at.astimezone(ZoneInfo("Asia/Shanghai")).year
        return self._add(
            "certified",
            contract_id,
            {
                "status": "certified",
                "terms": self.terms[contract_id],
                "registration_number": f"{year}640101{self.seq:06d}",
                "certified_at": at.isoformat(),
                "policy_year": year,
            },
            at,
        )

    def certified(self, t: dict, at: datetime) -> str:
        contract_id = self.submit(t)
        self.certify(contract_id, at)
        return contract_id

    def amend(self, contract_id: str, at: datetime, **changes) -> FeedEvent:
        previous = copy.deepcopy(self.terms[contract_id])
        new = copy.deepcopy(previous)
        new.update(changes)
        if "amount" in changes and "technology_amount" not in changes:
            new["technology_amount"] = min(Decimal(new["technology_amount"]), Decimal(new["amount"])).to_eng_string()
        self.terms[contract_id] = new
        return self._add(
            "amended",
            contract_id,
            {
                "status": "certified",
                "terms": new,
                "previous_terms": previous,
                "registration_number": None,
                "policy_year": None,
                "reason": "correction",
                "changed_fields": sorted(changes),
                "amended_at": at.isoformat(),
            },
            at,
        )

    def revoke(self, contract_id: str, at: datetime) -> FeedEvent:
        return self._add(
            "revoked",
            contract_id,
            {
                "status": "revoked",
                "terms": self.terms[contract_id],
                "registration_number": "x" * 16,
                "policy_year": 0,
                "reason": "fraud",
                "revoked_at": at.isoformat(),
            },
            at,
        )

    def unknown(self, at: datetime) -> FeedEvent:
        event = self._add("merged", str(uuid.uuid4()), {"whatever": 1}, at)
        return event


# ---------------------------------------------------------------------------------------------------------------
# A plain reference computation of the spec (ningxia-2020), written independently of tcr_subsidy.domain.
RATES = {
    "import": Decimal("0.30"),
    "export_enterprise": Decimal("0.05"),
    "export_institution": Decimal("0.05"),
    "brokerage": Decimal("0.02"),
}
CAPS = {
    "import": Decimal("5000000.00"),
    "export_enterprise": Decimal("1000000.00"),
    "export_institution": Decimal("1000000.00"),
    "brokerage": Decimal("1000000.00"),
}


def canonical(text: str) -> str:
    """The policy README's canonical form of a credit code or result id, written out independently."""
    return "".join(ch for ch in text if not ch.isspace() and ch != "-").upper()


def reference(events: list[FeedEvent]) -> dict[tuple[str, str, str], Decimal]:
    """(contract id, programme, beneficiary) -> net award, following the README's rules literally. Parties and
    projects are known by their canonical codes (upper case, no spaces or hyphens)."""
    awards: dict[tuple[str, str, str], Decimal] = {}
    entitled: dict[tuple[str, str, str], Decimal] = {}  # a live award's entitlement; absent once clawed back
    used: dict[tuple, Decimal] = {}
    certified: dict[str, int] = {}  # contract -> policy year
    revoked: set[str] = set()
    key_of: dict[tuple[str, str, str], tuple] = {}  # an award keeps the cap it was first decided under

    def beneficiaries(t: dict, contract_id: str, year: int):
        if t["category"] not in ("development", "transfer", "licence"):
            return []
        out = []
        seen = set()
        roles = [("buyer", "import"), ("seller", None), ("intermediary", "brokerage")]
        for role, programme in roles:
            p = t.get(role)
            if not p or not p.get("credit_code") or not (p.get("region") or "").startswith("64"):
                continue
            if role == "buyer" and p["kind"] != "enterprise":
                continue
            if role == "seller":
                programme = {
                    "enterprise": "export_enterprise",
                    "university": "export_institution",
                    "research_institute": "export_institution",
                }.get(p["kind"])
                if programme is None:
                    continue
            if role == "intermediary" and p["kind"] in ("individual", "foreign"):
                continue
            who = canonical(p["credit_code"])
            if who in seen:
                continue
            seen.add(who)
            base = Decimal(t["amount"] if programme == "import" else t["technology_amount"])
            entitlement = (RATES[programme] * base).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
            if programme == "export_institution":
                scope = ("project", canonical(t.get("result_id") or "") or f"contract {contract_id}")
            else:
                scope = ("year", year)
            out.append((programme, who, entitlement, (programme, who, scope)))
        return out

    for e in events:
        cid = e.subject
        kind = e.type.split(".")[3]
        if kind == "certified" and cid not in certified:
            year = datetime.fromisoformat(e.data["certified_at"]).astimezone(ZoneInfo("Asia/Shanghai")).year
            certified[cid] = year
            for programme, who, entitlement, cap_key in beneficiaries(e.data["terms"], cid, year):
                left = max(Decimal("0.00"), CAPS[programme] - used.get(cap_key, Decimal("0.00")))
                award = min(entitlement, left)
                used[cap_key] = used.get(cap_key, Decimal("0.00")) + award
                awards[(cid, programme, who)] = award
                entitled[(cid, programme, who)] = entitlement
        elif kind == "amended" and cid in certified and cid not in revoked:
            year = certified[cid]
            now = {
                (programme, who): (entitlement, cap_key)
                for programme, who, entitlement, cap_key in beneficiaries(e.data["terms"], cid, year)
            }
            for (c, programme, who), current in list(awards.items()):
                if c == cid and (programme, who) not in now:
                    old_key = key_of[(c, programme, who)]
                    used[old_key] -= current
                    awards[(c, programme, who)] = Decimal("0.00")
                    entitled.pop((c, programme, who), None)
            for (programme, who), (entitlement, cap_key) in now.items():
                key = (cid, programme, who)
                cap_key = key_of.get(key, cap_key)
                current = awards.get(key, Decimal("0.00"))
                if key in entitled and entitlement <= entitled[key]:
                    award = min(entitlement, current)  # an amendment never raises an award unless its base rises
                else:
                    left = CAPS[programme] - used.get(cap_key, Decimal("0.00")) + current
                    award = min(entitlement, max(Decimal("0.00"), left))
                used[cap_key] = used.get(cap_key, Decimal("0.00")) - current + award
                awards[key] = award
                entitled[key] = entitlement
        elif kind == "revoked" and cid in certified and cid not in revoked:
            revoked.add(cid)
            for (c, programme, who), current in list(awards.items()):
                if c == cid:
                    used[key_of[(c, programme, who)]] -= current
                    awards[(c, programme, who)] = Decimal("0.00")
                    entitled.pop((c, programme, who), None)
        # remember each award's cap key as first decided (an amendment keeps the original project/year)
        if kind in ("certified", "amended") and cid in certified:
            for programme, who, _entitlement, cap_key in beneficiaries(e.data["terms"], cid, certified[cid]):
                key_of.setdefault((cid, programme, who), cap_key)
    return awards
