"""Signed webhook delivery (Standard Webhooks) for any tcr publisher: subscriptions, filters, the delivery
worker and the `/v1/subscriptions` router. See docs/partners.md for how a service mounts it."""
from tcr_shared.webhooks.filters import FilterError, SubscriptionFilter, type_matches
from tcr_shared.webhooks.router import subscriptions_router
from tcr_shared.webhooks.settings import WebhookSettings
from tcr_shared.webhooks.source import EventSource, FeedClientSource
from tcr_shared.webhooks.tables import WebhookTables, create_webhook_tables, drop_webhook_tables, webhook_tables
from tcr_shared.webhooks.urls import UnsafeUrl, check_url
from tcr_shared.webhooks.worker import DeliveryWorker, encode_event, retry_delay, signed_headers

__all__ = [
    "DeliveryWorker", "EventSource", "FeedClientSource", "FilterError", "SubscriptionFilter",
    "UnsafeUrl", "WebhookSettings", "WebhookTables", "check_url", "create_webhook_tables", "drop_webhook_tables",
    "encode_event", "retry_delay", "signed_headers", "subscriptions_router", "type_matches", "webhook_tables",
]
