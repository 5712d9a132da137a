"""The webhook tables, added to a service's own SQLAlchemy metadata (and so to its alembic migrations).

    from tcr_shared.partners.webhooks import webhook_tables
    webhooks = webhook_tables(metadata)          # in the module that defines the service's metadata

alembic autogenerate then picks them up; a hand-written migration can call `create_webhook_tables(op)`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

SUBSCRIPTIONS = "webhook_subscriptions"
DELIVERIES = "webhook_deliveries"


def _subscription_columns() -> list:
    return [
        Column("id", String(40), primary_key=True),
        Column("owner", String(100), nullable=False, index=True),  # the key id that created it
        Column("url", Text, nullable=False),
        Column("description", Text, nullable=True),
        Column("event_types", JSON, nullable=False),
        Column("regions", JSON, nullable=False),
        Column("secret", Text, nullable=False),  # needed to sign; never returned after creation
        Column("status", String(16), nullable=False),  # active | paused | deleted
        Column("paused_reason", Text, nullable=True),
        Column("position", BigInteger, nullable=False),  # every event up to here is delivered (or filtered out)
        Column("generation", Integer, nullable=False, default=0),  # bumped by replay/resume/update
        Column("failing_since", DateTime(timezone=True), nullable=True),
        Column("failed_attempts", Integer, nullable=False, default=0),
        Column("next_retry_at", DateTime(timezone=True), nullable=True),
        Column("last_delivered_at", DateTime(timezone=True), nullable=True),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
    ]


def _delivery_columns() -> list:
    return [
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("subscription_id", String(40), nullable=False),
        Column("webhook_id", String(100), nullable=False),  # = the event id
        Column("event_type", String(100), nullable=False),
        Column("event_position", BigInteger, nullable=False),
        Column("attempt", Integer, nullable=False),
        Column("attempted_at", DateTime(timezone=True), nullable=False),
        Column("status_code", Integer, nullable=True),
        Column("outcome", String(16), nullable=False),  # delivered | failed | paused
        Column("error", Text, nullable=True),
        Column("duration_ms", Float, nullable=True),
        Column("next_retry_at", DateTime(timezone=True), nullable=True),
    ]


@dataclass(frozen=True)
class WebhookTables:
    subscriptions: Table
    deliveries: Table


def webhook_tables(metadata: MetaData) -> WebhookTables:
    if SUBSCRIPTIONS in metadata.tables:
        return WebhookTables(metadata.tables[SUBSCRIPTIONS], metadata.tables[DELIVERIES])
    subscriptions = Table(SUBSCRIPTIONS, metadata, *_subscription_columns())
    deliveries = Table(
        DELIVERIES, metadata, *_delivery_columns(), Index("ix_webhook_deliveries_subscription", "subscription_id", "id")
    )
    return WebhookTables(subscriptions, deliveries)


def create_webhook_tables(op) -> None:
    """For a hand-written alembic migration: `create_webhook_tables(op)` in upgrade()."""
    op.create_table(SUBSCRIPTIONS, *_subscription_columns())
    op.create_table(DELIVERIES, *_delivery_columns())
    op.create_index("ix_webhook_deliveries_subscription", DELIVERIES, ["subscription_id", "id"])


def drop_webhook_tables(op) -> None:
    op.drop_table(DELIVERIES)
    op.drop_table(SUBSCRIPTIONS)
