"""Run the registry's alembic migrations (on start, and from the migration Job in deploy/)."""

from __future__ import annotations

from pathlib import Path

from tcr_shared.platform.database import Database

MIGRATIONS = Path(__file__).with_name("migrations")


def upgrade(database: Database) -> None:
    database.migrate(MIGRATIONS)
