"""the append-only audit trail of every write and administrative act (issue 11)

Revision ID: 0003_audit
Revises: 0002
"""

from alembic import op

from tcr_shared.platform.audit import create_audit_table, drop_audit_table

revision = "0003_audit"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_audit_table(op)


def downgrade() -> None:
    drop_audit_table(op)
