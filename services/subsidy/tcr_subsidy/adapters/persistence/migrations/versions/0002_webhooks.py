"""webhook subscriptions and deliveries for award events

Revision ID: 0002
Revises: 0001
"""

from alembic import op

from tcr_shared.partners.webhooks import create_webhook_tables, drop_webhook_tables

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_webhook_tables(op)


def downgrade() -> None:
    drop_webhook_tables(op)
