"""the append-only audit trail of every write and administrative act (issue 11)

Revision ID: 0004_audit
Revises: 0003
"""

from alembic import op

from tcr_shared.platform.audit import create_audit_table, drop_audit_table

revision = "0004_audit"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_audit_table(op)


def downgrade() -> None:
    drop_audit_table(op)
