"""The registry's settings, from the environment (TCR_*)."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from tcr_shared.platform.database import Database
from tcr_shared.platform.sealing import MasterKey


class RegistrySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TCR_", extra="ignore")

    registry_database_url: str | None = None
    data_dir: Path = Path("./var")
    admin_key: str | None = None
    # 32 bytes, url-safe base64 (TCR_MASTER_KEY); without it a development key in data_dir (docs/security.md).
    master_key: str | None = None
    previous_master_key: str | None = None  # during a rotation only (TCR_PREVIOUS_MASTER_KEY)
    demo: bool = False
    demo_contracts: int = 400
    persistence: bool = True  # False only for the benchmark's baseline: validate, answer, store nothing
    access_log: bool = True
    writer_batch: int = 512
    writer_cache: int = 20_000  # aggregates the writer keeps in memory after writing them
    # Tests only: a comma-separated list of writes (certify, amend, create_point, ...) after whose commit the
    # process dies like kill -9, before answering (TCR_FAULT_AFTER_COMMIT).
    fault_after_commit: str | None = None
    sse_heartbeat: float = 15.0  # seconds between SSE heartbeats on /v1/events/stream (TCR_SSE_HEARTBEAT)

    def master(self) -> MasterKey:
        if self.master_key:
            current = MasterKey.from_text(self.master_key, "TCR_MASTER_KEY")
        else:
            current = MasterKey.development(self.data_dir)
        return current.replacing(self.previous_master_key)

    @property
    def database(self) -> Database:
        return Database.for_service(self.registry_database_url, self.data_dir, "registry")
