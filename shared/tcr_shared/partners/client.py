"""The partner client: follow a tcr feed from a saved position, and verify signed webhooks.

Installable on its own (`pip install ./shared`, distribution `tcr-partner`; it needs only httpx, pydantic and
standardwebhooks). Two ways to receive events:

Pull (catch-up pages, then the live SSE stream, reconnecting with backoff)::

    from tcr_shared.partners.client import PartnerClient
    client = PartnerClient("https://registry.example", api_key)
    async for event in client.events(after=saved_position):
        apply(event); save(event.position)          # in one transaction: exactly once

Push (webhooks; Standard Webhooks signatures, secret `whsec_...` from POST /v1/subscriptions)::

    from tcr_shared.partners.client import verify_webhook, InvalidWebhook
    event = verify_webhook(secret, raw_body, request.headers)   # raises InvalidWebhook
    # deliveries are at least once: drop an event whose `webhook-id` (= event.id) you already have

Events arrive in feed order per subscription; `event.position` increases.
"""

from __future__ import annotations

import binascii
from collections.abc import Mapping

from pydantic import ValidationError
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from tcr_shared.feeds.client import Backoff, FeedClient, FeedUnavailable
from tcr_shared.language.events.envelope import FeedEvent, FeedPage

__all__ = ["Backoff", "FeedEvent", "FeedPage", "FeedUnavailable", "InvalidWebhook", "PartnerClient", "verify_webhook"]


class PartnerClient(FeedClient):
    """A `FeedClient` (page / follow / stream / events); the name partners import."""


class InvalidWebhook(Exception):
    """The request is not a genuine, fresh tcr webhook: answer 401 (or 400) and ignore it."""


def verify_webhook(secret: str, body: bytes | str, headers: Mapping[str, str]) -> FeedEvent:
    """Check the Standard Webhooks signature and timestamp (5 minutes' tolerance) of a delivery and return its
    event. Pass the raw body exactly as received, before any JSON parsing."""
    try:
        Webhook(secret).verify(body, {k.lower(): v for k, v in headers.items()}, json_parse=False)
    except (WebhookVerificationError, ValueError, binascii.Error) as exc:
        raise InvalidWebhook(str(exc) or type(exc).__name__) from exc
    try:
        event = FeedEvent.model_validate_json(body)
    except ValidationError as exc:
        raise InvalidWebhook(f"signed, but not a tcr event: {exc.error_count()} error(s)") from exc
    if event.id != {k.lower(): v for k, v in headers.items()}.get("webhook-id"):
        raise InvalidWebhook("the webhook-id header does not name the event in the body")
    return event
