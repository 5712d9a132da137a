"""Relational state beside the event store: points, API keys, idempotency records, the contract index
(a projection of the registry's own log, for listing and filtering), and batch-list import jobs."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
)

from tcr_shared.feeds.projection_store import tracking_table
from tcr_shared.partners.webhooks import webhook_tables
from tcr_shared.platform.audit import audit_table

metadata = MetaData()

points = Table(
    "points",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("number", String(2), nullable=False),
    Column("name", String(200), nullable=False),
    Column("jurisdiction", String(4), nullable=False),
    Column("created_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
    Column("created_by", String(64), nullable=False),
    UniqueConstraint("jurisdiction", "number", name="uq_points_jurisdiction_number"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("point_id", String(36), nullable=True),
    Column("label", String(200), nullable=True),
    Column("created_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
)

idempotency_records = Table(
    "idempotency_records",
    metadata,
    Column("key_id", String(64), primary_key=True),
    Column("idempotency_key", String(200), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("headers", JSON, nullable=False),
    # What the answer was about, never its body: {"contract_id", "version"} for contract writes (the body is
    # rendered again from that version), or the admin answer sealed with the master key (sealed_body).
    Column("reference", JSON(none_as_null=True), nullable=True),
    Column("sealed_body", Text, nullable=True),
    Column("position", BigInteger, nullable=True),
    Column("created_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
)

contract_index = Table(
    "contract_index",
    metadata,
    Column("contract_id", String(36), primary_key=True),
    Column("first_position", BigInteger, nullable=False),
    Column("point_id", String(36), nullable=False),
    Column("status", String(16), nullable=False),
    Column("registration_number", String(16), nullable=True),
    Column("year", Integer, nullable=False),
    Column("seller_code", String(32), nullable=True),
    Column("buyer_code", String(32), nullable=True),
    Column("seller_region", String(6), nullable=True),
    Column("buyer_region", String(6), nullable=True),
    Column("category", String(16), nullable=False),
    Column("amount", Numeric(18, 2), nullable=False),
    Column("summary", JSON, nullable=False),
    Index("ix_contract_index_position", "first_position"),
    Index("ix_contract_index_point", "point_id", "first_position"),
    Index("ix_contract_index_status", "status"),
)

# Append-only (triggers refuse UPDATE and DELETE): who did what, when, from where, and how it ended.
audit_log = audit_table(metadata)

# One data key per individual (crypto-shredding): the key sealed with the master key, found by a keyed hash of
# the identity number (never the number itself). Erasure destroys the key and keeps the row as its record.
personal_keys = Table(
    "personal_keys",
    metadata,
    Column("subject", String(64), primary_key=True),
    Column("sealed_key", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
    Column("erased_at", DateTime(timezone=True), nullable=True),
    Column("erased_by", String(64), nullable=True),
)

import_jobs = Table(
    "import_jobs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("point_id", String(36), nullable=False),
    Column("filename", String(300), nullable=False),
    Column("status", String(16), nullable=False),
    Column("rows", Integer, nullable=False),
    Column("processed", Integer, nullable=False),
    Column("registered", Integer, nullable=False),
    Column("certified", Integer, nullable=False),
    Column("already_registered", Integer, nullable=False),
    Column("rejected", Integer, nullable=False),
    Column("message", String(2000), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Index("ix_import_jobs_point", "point_id", "created_at"),
)

import_errors = Table(
    "import_errors",
    metadata,
    Column("job_id", String(36), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("row", Integer, nullable=False),
    Column("field", String(100), nullable=False),
    Column("message", String(2000), nullable=False),
)

feed_tracking = tracking_table(metadata)
webhooks = webhook_tables(metadata)

# Tables the eventsourcing library creates and owns; alembic must leave them alone.
EVENT_STORE_TABLES = frozenset({"registry_events", "stored_events", "notification_tracking"})
