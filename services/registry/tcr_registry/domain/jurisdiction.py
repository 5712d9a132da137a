"""Which registration point may register which contract (tcr rule)."""

from __future__ import annotations

from tcr_registry.domain.terms import Terms


def may_register(jurisdiction: str, terms: Terms) -> bool:
    """`jurisdiction` is four digits: a prefecture such as 6401, or 6400 for the whole region.

    The seller's region decides; when the seller is outside Ningxia, the buyer's does."""
    anchor = terms.seller if terms.seller.in_ningxia else terms.buyer
    if not anchor.region:
        return False
    prefix = "64" if jurisdiction == "6400" else jurisdiction
    return anchor.region.startswith(prefix)
