"""The relay's settings, from the environment (TCR_*)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

# source -> the subject segment of its events (tcr.<segment>.<event>.v1)
SOURCES = {"registry": "registry.contract", "subsidy": "subsidy.award"}


class RelaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TCR_", extra="ignore")

    nats_url: str | None = None
    nats_stream: str = "TCR"
    nats_subject_prefix: str = "tcr"
    nats_duplicate_window: float = 3600.0  # seconds
    registry_url: str = "http://127.0.0.1:8001"
    subsidy_url: str = "http://127.0.0.1:8002"
    feed_key: str | None = None
    admin_key: str | None = None
    relay_sources: str = "registry,subsidy"

    @property
    def key(self) -> str:
        key = self.feed_key or self.admin_key
        if not key:
            raise SystemExit("the relay needs TCR_FEED_KEY (or TCR_ADMIN_KEY) to read the feeds")
        return key

    def source_urls(self) -> dict[str, str]:
        urls = {"registry": self.registry_url, "subsidy": self.subsidy_url}
        wanted = [s.strip() for s in self.relay_sources.split(",") if s.strip()]
        unknown = [s for s in wanted if s not in SOURCES]
        if unknown:
            raise SystemExit(f"TCR_RELAY_SOURCES: unknown source(s) {unknown}; choose from {sorted(SOURCES)}")
        return {s: urls[s] for s in wanted}
