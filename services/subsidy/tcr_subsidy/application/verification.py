"""What a rebuild would change: the awards whose amount differs between the live projection and a replay from
zero (`tcr-subsidy verify`), matched by contract, programme and beneficiary in canonical form, so that an award
stored under an old spelling of a credit code is compared with its rebuilt, canonical self."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from tcr_shared.language.identifiers import canonical_credit_code
from tcr_shared.language.money import ZERO, format_money


@dataclass(frozen=True)
class AwardAmount:
    """One award as verify compares it."""

    contract_id: str
    programme: str
    beneficiary: str
    policy_year: int
    award: Decimal
    status: str

    @property
    def key(self) -> tuple[str, str, str]:
        return self.contract_id, self.programme, canonical_credit_code(self.beneficiary)


@dataclass(frozen=True)
class AwardDifference:
    contract_id: str
    programme: str
    beneficiary: str
    policy_year: int
    live: AwardAmount | None  # None: the rebuild decides an award the live projection does not have
    rebuilt: AwardAmount | None  # None: the live award would disappear

    @property
    def change(self) -> Decimal:
        """Rebuilt minus live: what a rebuild would pay more (positive) or claw back (negative)."""
        return (self.rebuilt.award if self.rebuilt else ZERO) - (self.live.award if self.live else ZERO)

    def describe(self) -> str:
        def amount(a: AwardAmount | None) -> str:
            return "absent" if a is None else f"{format_money(a.award)} ({a.status})"

        sign = "+" if self.change > 0 else ""
        return (
            f"contract {self.contract_id} {self.programme} {self.beneficiary} (policy year {self.policy_year}): "
            f"live {amount(self.live)}, rebuilt {amount(self.rebuilt)}, change {sign}{format_money(self.change)}"
        )


def award_differences(live: list[AwardAmount], rebuilt: list[AwardAmount]) -> list[AwardDifference]:
    """Every award whose amount, status or spelling differs, in contract and programme order."""
    by_live = {a.key: a for a in live}
    by_rebuilt = {a.key: a for a in rebuilt}
    out = []
    for key in sorted(by_live.keys() | by_rebuilt.keys()):
        a, b = by_live.get(key), by_rebuilt.get(key)
        if a is not None and b is not None and (a.award, a.status, a.beneficiary) == (b.award, b.status, b.beneficiary):
            continue
        known = b or a
        assert known is not None
        out.append(AwardDifference(key[0], key[1], key[2], known.policy_year, a, b))
    return out
