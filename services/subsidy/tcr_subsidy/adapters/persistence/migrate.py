"""Run the subsidy service's alembic migrations (on start, and from the CLI)."""

from __future__ import annotations

from pathlib import Path

from tcr_shared.platform.database import Database

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def upgrade(database: Database) -> None:
    database.migrate(MIGRATIONS)
