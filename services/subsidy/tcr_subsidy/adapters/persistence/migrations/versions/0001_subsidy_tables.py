"""subsidy tables: tracking, contracts, awards, caps, award feed, skipped events

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
        "subsidy_contracts",
        sa.Column("contract_id", sa.String(64), primary_key=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("registration_number", sa.String(16)),
        sa.Column("policy_year", sa.Integer),
        sa.Column("rule_set", sa.String(64)),
        sa.Column("certified_at", sa.String(40)),
        sa.Column("result_id", sa.String(200)),
        sa.Column("cause_position", sa.BigInteger, nullable=False),
        sa.Column("explanation", sa.Text, nullable=False),
        sa.Column("considered", sa.Text, nullable=False),
    )
    op.create_table(
        "subsidy_awards",
        sa.Column("award_id", sa.String(36), primary_key=True),
        sa.Column("contract_id", sa.String(64), nullable=False),
        sa.Column("registration_number", sa.String(16)),
        sa.Column("beneficiary", sa.String(18), nullable=False),
        sa.Column("beneficiary_name", sa.String(500)),
        sa.Column("beneficiary_kind", sa.String(40), nullable=False),
        sa.Column("beneficiary_region", sa.String(6), nullable=False),
        sa.Column("programme", sa.String(40), nullable=False),
        sa.Column("policy_year", sa.Integer, nullable=False),
        sa.Column("rule_set", sa.String(64), nullable=False),
        sa.Column("clause", sa.String(40), nullable=False),
        sa.Column("cap_key", sa.String(300), nullable=False),
        sa.Column("project", sa.String(250)),
        sa.Column("base_fen", sa.BigInteger, nullable=False),
        sa.Column("rate", sa.String(20), nullable=False),
        sa.Column("entitlement_fen", sa.BigInteger, nullable=False),
        sa.Column("award_fen", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("cap_fen", sa.BigInteger, nullable=False),
        sa.Column("explanation", sa.Text, nullable=False),
        sa.Column("decided_position", sa.BigInteger, nullable=False),
        sa.Column("updated_position", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_subsidy_awards_contract_id", "subsidy_awards", ["contract_id"])
    op.create_index("ix_subsidy_awards_beneficiary_year", "subsidy_awards", ["beneficiary", "policy_year"])
    op.create_index("ix_subsidy_awards_year_programme", "subsidy_awards", ["policy_year", "programme"])
    op.create_table(
        "subsidy_caps",
        sa.Column("cap_key", sa.String(300), primary_key=True),
        sa.Column("programme", sa.String(40), nullable=False),
        sa.Column("beneficiary", sa.String(18), nullable=False),
        sa.Column("policy_year", sa.Integer),
        sa.Column("project", sa.String(250)),
        sa.Column("used_fen", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_subsidy_caps_beneficiary", "subsidy_caps", ["beneficiary"])
    op.create_table(
        "subsidy_award_events",
        sa.Column("position", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("id", sa.String(36), nullable=False, unique=True),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("time", sa.String(40), nullable=False),
        sa.Column("subject", sa.String(64), nullable=False),
        sa.Column("award_id", sa.String(36), nullable=False),
        sa.Column("cause_position", sa.BigInteger, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
    )
    op.create_index("ix_subsidy_award_events_award_id", "subsidy_award_events", ["award_id"])
    op.create_table(
        "subsidy_skipped_events",
        sa.Column("position", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("event_id", sa.String(100), nullable=False),
        sa.Column("type", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "subsidy_skipped_events",
        "subsidy_award_events",
        "subsidy_caps",
        "subsidy_awards",
        "subsidy_contracts",
        "feed_tracking",
    ):
        op.drop_table(table)
