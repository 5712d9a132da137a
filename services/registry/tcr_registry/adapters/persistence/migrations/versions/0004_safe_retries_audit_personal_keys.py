"""idempotency records keep references (no personal data), the append-only audit log, per-individual keys

Revision ID: 0003_safe_retries
Revises: 0003_canonical_index
"""

import json

import sqlalchemy as sa
from alembic import op

from tcr_shared.platform.sealing import is_sealed, master_key

revision = "0003_safe_retries"
down_revision = "0003_canonical_index"
branch_labels = None
depends_on = None

_APPEND_ONLY_PG = """
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
"""

_APPEND_ONLY_SQLITE = [
    "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
    "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
]


def upgrade() -> None:
    _idempotency_records_keep_references()
    _seal_webhook_secrets()
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=True),
        sa.Column("point_id", sa.String(length=36), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=True),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("path", sa.String(length=500), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=True),
        sa.Column("outcome", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_key_id", "audit_log", ["key_id", "id"])
    op.create_index("ix_audit_log_action", "audit_log", ["action", "id"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_APPEND_ONLY_PG)
    else:
        for statement in _APPEND_ONLY_SQLITE:
            op.execute(statement)
    op.create_table(
        "personal_keys",
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("sealed_key", sa.Text(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.text("(CURRENT_TIMESTAMP)"), nullable=False
        ),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("erased_by", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("subject"),
    )


def _idempotency_records_keep_references() -> None:
    """Records used to keep the whole answer, individuals' names and identity numbers included: keep only which
    contract version it was (the answer is rendered again from it) and drop the bodies."""
    with op.batch_alter_table("idempotency_records") as batch:
        batch.add_column(sa.Column("reference", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("sealed_body", sa.Text(), nullable=True))
        batch.add_column(sa.Column("position", sa.BigInteger(), nullable=True))
    bind = op.get_bind()
    records = sa.table(
        "idempotency_records",
        sa.column("key_id", sa.String),
        sa.column("idempotency_key", sa.String),
        sa.column("body", sa.JSON),
        sa.column("headers", sa.JSON),
        sa.column("reference", sa.JSON(none_as_null=True)),
        sa.column("position", sa.BigInteger),
    )
    for row in bind.execute(sa.select(records)).mappings().all():
        body = row["body"] if isinstance(row["body"], dict) else json.loads(row["body"] or "{}")
        headers = row["headers"] if isinstance(row["headers"], dict) else json.loads(row["headers"] or "{}")
        position = headers.get("tcr-position")
        reference = {"contract_id": body.get("id"), "version": body.get("version")} if "version" in body else None
        bind.execute(
            sa.update(records)
            .where(records.c.key_id == row["key_id"], records.c.idempotency_key == row["idempotency_key"])
            .values(reference=reference, position=int(position) if position else None)
        )
    # A record that is not a contract's answer cannot be rendered again: it is dropped (its retry runs anew).
    bind.execute(sa.delete(records).where(records.c.reference.is_(None)))
    with op.batch_alter_table("idempotency_records") as batch:
        batch.drop_column("body")


def _seal_webhook_secrets() -> None:
    """Signing secrets stored in clear before: sealed with the master key (the worker opens both forms)."""
    bind = op.get_bind()
    subscriptions = sa.table("webhook_subscriptions", sa.column("id", sa.String), sa.column("secret", sa.Text))
    for row in bind.execute(sa.select(subscriptions)).all():
        if not is_sealed(row.secret):
            sealed = master_key().seal(row.secret)
            bind.execute(sa.update(subscriptions).where(subscriptions.c.id == row.id).values(secret=sealed))


def downgrade() -> None:
    op.drop_table("personal_keys")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log")
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_update ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
    op.drop_table("audit_log")
    with op.batch_alter_table("idempotency_records") as batch:
        batch.add_column(sa.Column("body", sa.JSON(), nullable=False, server_default="{}"))
        batch.drop_column("position")
        batch.drop_column("sealed_body")
        batch.drop_column("reference")
