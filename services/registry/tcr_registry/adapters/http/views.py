"""What the registry answers about a contract."""

from __future__ import annotations

from typing import Any

from tcr_registry.domain.contract import Contract
from tcr_shared.language.vocabulary import CATEGORY_LABELS, STATUS_LABELS


def contract_view(contract: Contract, *, personal: bool) -> dict[str, Any]:
    terms = contract.terms
    record = terms.to_record() if personal else terms.public()
    return {
        "id": str(contract.id),
        "version": contract.version,
        "status": contract.status,
        "status_label": STATUS_LABELS[contract.status],
        "point_id": contract.point_id,
        "registration_number": contract.registration_number,
        "policy_year": contract.policy_year,
        "submitted_at": contract.submitted_at,
        "certified_at": contract.certified_at,
        "expert_review_ref": contract.expert_review_ref,
        "category_label": CATEGORY_LABELS.get(terms.category),
        **record,
    }


def etag(contract: Contract) -> str:
    return f'"{contract.version}"'


def parse_if_match(header: str | None) -> int | None:
    if header is None:
        return None
    if header.strip() == "*":
        return None  # RFC 9110: "*" matches any current version
    value = header.strip().removeprefix("W/").strip('"')
    if not value.isdigit():
        from tcr_shared.platform.problems import Problem

        raise Problem(412, f"If-Match must be the contract's ETag (its version in quotes), not {header!r}.")
    return int(value)
