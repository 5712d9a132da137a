"""The reporting service's settings, from the environment (pydantic-settings); names as in docs/ARCHITECTURE.md."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from tcr_shared.platform.database import Database


class ReportingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TCR_", extra="ignore")

    reporting_database_url: str | None = None
    data_dir: Path = Path("var")
    admin_key: str | None = None
    registry_url: str = "http://127.0.0.1:8001"
    subsidy_url: str = "http://127.0.0.1:8002"
    feed_key: str | None = None
    # Long-poll wait on the feeds, seconds (the publisher answers as soon as an event arrives).
    feed_wait: float = 20.0
    # A follower failing on the same event for longer than this (seconds) is stalled: /readyz answers 503 and
    # tcr_follower_stalled_seconds rises (docs/operations.md); it keeps retrying, never skips.
    follower_stall_after: float = 60.0
    # While catching up (the feed says more is already there): up to this many pages of 1,000 events are applied
    # in one transaction (one lookup, one write per table, one commit), and this many pages are read ahead while
    # a batch is applied. A live follower still applies each page as it arrives. 1 and 0 turn them off.
    reporting_batch_pages: int = 20
    reporting_prefetch: int = 2
    log_level: str = "INFO"
    # Answers are cached per projection version (emptied whenever a page is applied); off for benchmarks
    # of the database path.
    query_cache: bool = True

    @property
    def database(self) -> Database:
        return Database.for_service(self.reporting_database_url, self.data_dir, "reporting")

    @property
    def effective_feed_key(self) -> str:
        return self.feed_key or self.admin_key or ""
