"""Signed webhook delivery (Standard Webhooks) for any tcr publisher: subscriptions, filters, the delivery
worker and the `/v1/subscriptions` router. See docs/partners.md for how a service mounts it."""

from tcr_shared.language.events.privacy import encode_event
from tcr_shared.partners.webhooks.filters import FilterError, SubscriptionFilter, type_matches
from tcr_shared.partners.webhooks.router import subscriptions_router
from tcr_shared.partners.webhooks.settings import WebhookSettings
from tcr_shared.partners.webhooks.tables import (
    WebhookTables,
    create_webhook_tables,
    drop_webhook_tables,
    webhook_tables,
)
from tcr_shared.partners.webhooks.urls import UnsafeUrl, check_url
from tcr_shared.partners.webhooks.worker import (
    KEY_REVOKED,
    DeliveryWorker,
    pause_subscriptions_of,
    retry_delay,
    signed_headers,
)

__all__ = [
    "KEY_REVOKED",
    "DeliveryWorker",
    "FilterError",
    "SubscriptionFilter",
    "UnsafeUrl",
    "WebhookSettings",
    "WebhookTables",
    "check_url",
    "create_webhook_tables",
    "drop_webhook_tables",
    "encode_event",
    "pause_subscriptions_of",
    "retry_delay",
    "signed_headers",
    "subscriptions_router",
    "type_matches",
    "webhook_tables",
]
