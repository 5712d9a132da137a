"""registry_rendered_events: each public event's feed JSON, rendered once and kept (PostgreSQL)

Revision ID: 0007_rendered_events
Revises: 0006_append_events

Why: a reader catching up on history that this process does not hold in memory (a new partner, a follower's rebuild,
any read after a restart) made the feed decode and render every event again, ~35 microseconds of CPU an event, a
ceiling near 25,000 events/s whatever the database could give (docs/performance.md, the feed). Events are immutable,
so their public JSON is too: the feed stores each page it renders and serves later reads of it from here. Each row
also says that no position of the log lies between `previous` and `position`, so a run of rows read back is known to
be the whole log over that stretch (non-public positions have a row without JSON). `rendering` names the version of
the public JSON (tcr_registry.adapters.feeds.rendered_store.RENDERING): rows of another version are rendered again.
A cache, not a record: it may be emptied at any time. Only on PostgreSQL (SQLite registries render as before).
"""

from alembic import op

revision = "0007_rendered_events"
down_revision = "0006_append_events"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE TABLE registry_rendered_events (
                position bigint PRIMARY KEY,
                previous bigint NOT NULL,
                type text,
                json bytea,
                rendering smallint NOT NULL
            )
            """
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TABLE IF EXISTS registry_rendered_events")
