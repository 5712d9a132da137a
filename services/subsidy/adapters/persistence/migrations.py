"""Run the subsidy service's alembic migrations (on start, and from the CLI)."""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from tcr_shared.database import Database

SCRIPT_LOCATION = Path(__file__).resolve().parent / "alembic"


def alembic_config(database: Database) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.set_main_option("sqlalchemy.url", database.sync_url.replace("%", "%%"))
    config.set_main_option("version_table", "subsidy_alembic_version")
    return config


def upgrade(database: Database) -> None:
    command.upgrade(alembic_config(database), "head")
