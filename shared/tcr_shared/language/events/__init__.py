"""The public event contract: CloudEvents 1.0 envelopes and the versioned data schemas of each event type.

These pydantic models are the single source for the feed, the webhooks, NATS messages and the AsyncAPI document.
"""

from tcr_shared.language.events.envelope import FeedEvent, FeedPage
from tcr_shared.language.events.registry import (
    REGISTRY_EVENT_TYPES,
    ContractAmendedV1,
    ContractCertifiedV1,
    ContractRejectedV1,
    ContractRevokedV1,
    ContractSubmittedV1,
    ContractTerms,
    ContractWithdrawnV1,
    PublicParty,
)

__all__ = [
    "FeedEvent",
    "FeedPage",
    "REGISTRY_EVENT_TYPES",
    "ContractAmendedV1",
    "ContractCertifiedV1",
    "ContractRejectedV1",
    "ContractRevokedV1",
    "ContractSubmittedV1",
    "ContractTerms",
    "ContractWithdrawnV1",
    "PublicParty",
]
