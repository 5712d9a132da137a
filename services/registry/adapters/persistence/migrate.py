"""Run the registry's alembic migrations (on start, and from the migration Job in deploy/)."""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from tcr_shared.database import Database

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(database: Database) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database.sync_url.replace("%", "%%"))
    return config


def upgrade(database: Database) -> None:
    command.upgrade(alembic_config(database), "head")
