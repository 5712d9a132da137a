"""idempotency records keep references (no personal data), the append-only audit log, per-individual keys

Revision ID: 0003_safe_retries
Revises: 0003_canonical_index
"""

import json

import sqlalchemy as sa
from alembic import op

from tcr_shared.platform.audit import create_audit_table, drop_audit_table
from tcr_shared.platform.sealing import is_sealed, master_key

revision = "0003_safe_retries"
down_revision = "0003_canonical_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    _idempotency_records_keep_references()
    _seal_webhook_secrets()
    create_audit_table(op)
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
    drop_audit_table(op)
    with op.batch_alter_table("idempotency_records") as batch:
        batch.add_column(sa.Column("body", sa.JSON(), nullable=False, server_default="{}"))
        batch.drop_column("position")
        batch.drop_column("sealed_body")
        batch.drop_column("reference")
