"""The subsidy service's settings, from the environment (pydantic-settings)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from tcr_shared.platform.database import Database
from tcr_subsidy.adapters.rule_files import DEFAULT_RULES_DIR


class SubsidySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TCR_", extra="ignore")

    subsidy_database_url: str | None = Field(None, description="TCR_SUBSIDY_DATABASE_URL; default var/subsidy.db")
    data_dir: Path = Field(Path("var"), description="TCR_DATA_DIR: where the SQLite files live")
    admin_key: str | None = Field(None, description="TCR_ADMIN_KEY: the bootstrap admin key")
    registry_url: str = Field("http://127.0.0.1:8001", description="TCR_REGISTRY_URL")
    feed_key: str | None = Field(None, description="TCR_FEED_KEY: key to read the registry feed (default admin key)")
    subsidy_follow: bool = Field(True, description="TCR_SUBSIDY_FOLLOW=0 serves reads without following the feed")
    subsidy_page_size: int = Field(1000, ge=1, le=1000, description="TCR_SUBSIDY_PAGE_SIZE: feed page size")
    subsidy_prefetch: int = Field(
        4,
        ge=0,
        le=8,
        description="TCR_SUBSIDY_PREFETCH: feed pages read ahead while "
        "one is applied (the registry reads the next pages while this service decides "
        "and writes; 0 = off)",
    )
    subsidy_batch_pages: int = Field(
        5,
        ge=1,
        le=50,
        description="TCR_SUBSIDY_BATCH_PAGES: while catching up, "
        "up to this many feed pages are applied together, a page per transaction, each page decided "
        "while the one before commits (PostgreSQL; 1 = one page at a time)",
    )
    subsidy_stall_after: float = Field(
        60.0,
        gt=0,
        description="TCR_SUBSIDY_STALL_AFTER: seconds the follower may fail on one registry event before the "
        "service is not ready and /v1/status says `stalled` (it never skips the event)",
    )
    subsidy_simulation_job_after: int = Field(
        200_000,
        ge=0,
        description="TCR_SUBSIDY_SIMULATION_JOB_AFTER: a what-if simulation over this many registry events or more "
        "answers 202 and runs as a job to poll (GET /v1/simulations/{id}); shorter ones answer 201 at once",
    )
    subsidy_rules_dirs: str = Field(
        str(DEFAULT_RULES_DIR), description="TCR_SUBSIDY_RULES_DIRS: rule set folders, separated by ':'"
    )

    @property
    def database(self) -> Database:
        return Database.for_service(self.subsidy_database_url, self.data_dir, "subsidy")

    @property
    def rules_dirs(self) -> list[Path]:
        return [Path(p) for p in self.subsidy_rules_dirs.split(":") if p.strip()]

    @property
    def registry_feed_key(self) -> str:
        return self.feed_key or self.admin_key or ""
