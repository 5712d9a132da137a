"""figures, counted contracts, feed tracking

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feed_tracking",
        sa.Column("feed", sa.String(100), primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
    )
    op.create_table(
        "figures",
        sa.Column("region", sa.String(6), primary_key=True),
        sa.Column("year", sa.Integer, primary_key=True),
        sa.Column("side", sa.String(16), primary_key=True),
        sa.Column("category", sa.String(32), primary_key=True),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.Column("technology_amount_fen", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_figures_year_side", "figures", ["year", "side"])
    op.create_table(
        "counted_contracts",
        sa.Column("contract_id", sa.String(64), primary_key=True),
        sa.Column("year", sa.Integer, nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.Column("technology_amount_fen", sa.BigInteger, nullable=False),
        sa.Column("seller_region", sa.String(6), nullable=True),
        sa.Column("buyer_region", sa.String(6), nullable=True),
        sa.Column("position", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("counted_contracts")
    op.drop_index("ix_figures_year_side", table_name="figures")
    op.drop_table("figures")
    op.drop_table("feed_tracking")
