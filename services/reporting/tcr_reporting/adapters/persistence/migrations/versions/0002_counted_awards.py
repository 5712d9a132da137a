"""counted awards: the per-award record that lets an award move between regions

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "counted_awards",
        sa.Column("award_id", sa.String(64), primary_key=True),
        sa.Column("region", sa.String(6), nullable=False),
        sa.Column("year", sa.Integer, nullable=False),
        sa.Column("programme", sa.String(32), nullable=False),
        sa.Column("award_fen", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("counted_awards")
