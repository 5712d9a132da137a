"""The registry's settings, from the environment (TCR_*)."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from tcr_shared.platform.database import Database


class RegistrySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TCR_", extra="ignore")

    registry_database_url: str | None = None
    data_dir: Path = Path("./var")
    admin_key: str | None = None
    demo: bool = False
    demo_contracts: int = 400
    persistence: bool = True  # False only for the benchmark's baseline: validate, answer, store nothing
    access_log: bool = True
    writer_batch: int = 512
    writer_cache: int = 20_000  # aggregates the writer keeps in memory after writing them
    sse_heartbeat: float = 15.0  # seconds between SSE heartbeats on /v1/events/stream (TCR_SSE_HEARTBEAT)

    @property
    def database(self) -> Database:
        return Database.for_service(self.registry_database_url, self.data_dir, "registry")
