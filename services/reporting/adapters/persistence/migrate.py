"""Alembic migrations, run on start (and by `tcr-reporting migrate`)."""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from tcr_shared.database import Database

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(database: Database) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database.sync_url.replace("%", "%%"))
    return config


def upgrade(database: Database) -> None:
    command.upgrade(alembic_config(database), "head")
