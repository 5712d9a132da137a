"""long simulations run as jobs: a status, the progress reached and the reason of a failure (issue 14)

Revision ID: 0005_jobs
Revises: 0004_audit
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_jobs"
down_revision = "0004_audit"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subsidy_simulations") as table:
        # rows kept before jobs existed were all finished simulations
        table.add_column(sa.Column("status", sa.String(16), nullable=False, server_default="done"))
        table.add_column(sa.Column("progress", sa.Text, nullable=True))
        table.add_column(sa.Column("error", sa.Text, nullable=True))
        table.alter_column("result", existing_type=sa.Text, nullable=True)
        table.alter_column("registry_position", existing_type=sa.BigInteger, nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM subsidy_simulations WHERE status <> 'done'")
    with op.batch_alter_table("subsidy_simulations") as table:
        table.alter_column("registry_position", existing_type=sa.BigInteger, nullable=False)
        table.alter_column("result", existing_type=sa.Text, nullable=False)
        table.drop_column("error")
        table.drop_column("progress")
        table.drop_column("status")
