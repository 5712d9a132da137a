"""rebuild the contract index with canonical credit codes

The index is a projection of the registry's own feed. Since credit codes and result ids are canonical in the feed
(issue 10), rows written before keep a code as it was typed, so a list filtered by a party's code would miss them.
Emptying the index and its tracking row makes the service rebuild it from position 0 on start (it follows its own
log; nothing else reads these rows). Only the projection is touched: the events keep their bytes.

Revision ID: 0003_canonical_index
Revises: 0002
"""

from alembic import op

revision = "0003_canonical_index"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DELETE FROM contract_index")
    op.execute("DELETE FROM feed_tracking WHERE feed = 'registry-contract-index'")


def downgrade() -> None:
    pass  # the rebuilt index is valid for the previous code too
