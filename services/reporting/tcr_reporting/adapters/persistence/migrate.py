"""Alembic migrations, run on start (and by `tcr-reporting migrate`)."""

from __future__ import annotations

from pathlib import Path

from tcr_shared.platform.database import Database

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def upgrade(database: Database) -> None:
    database.migrate(MIGRATIONS)
