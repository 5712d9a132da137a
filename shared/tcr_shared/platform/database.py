"""One database URL per service, turned into what each library needs: SQLAlchemy (async and sync, for
alembic) and the eventsourcing library's environment. PostgreSQL in production; SQLite files by default."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


@dataclass(frozen=True)
class Database:
    url: str

    @classmethod
    def for_service(cls, url: str | None, data_dir: Path, service: str) -> "Database":
        if url:
            return cls(url)
        data_dir.mkdir(parents=True, exist_ok=True)
        return cls(f"sqlite:///{(data_dir / f'{service}.db').resolve()}")

    @property
    def _parsed(self):
        return make_url(self.url)

    @property
    def is_postgres(self) -> bool:
        return self._parsed.get_backend_name() == "postgresql"

    @property
    def sqlite_path(self) -> str:
        return self._parsed.database or ""

    @property
    def async_url(self) -> str:
        driver = "postgresql+asyncpg" if self.is_postgres else "sqlite+aiosqlite"
        return self._parsed.set(drivername=driver).render_as_string(hide_password=False)

    @property
    def sync_url(self) -> str:
        driver = "postgresql+psycopg" if self.is_postgres else "sqlite"
        return self._parsed.set(drivername=driver).render_as_string(hide_password=False)

    def migrate(self, script_location: Path, **options: str) -> None:
        """Upgrade to the newest alembic revision in `script_location` (run on start and by each CLI)."""
        config = Config()
        config.set_main_option("script_location", str(script_location))
        config.set_main_option("sqlalchemy.url", self.sync_url.replace("%", "%%"))
        for key, value in options.items():
            config.set_main_option(key, value)
        command.upgrade(config, "head")

    def eventsourcing_env(self) -> dict[str, str]:
        if not self.is_postgres:
            return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": self.sqlite_path,
                    "SQLITE_LOCK_TIMEOUT": "10"}
        u = self._parsed
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": u.database or "postgres",
            "POSTGRES_HOST": u.host or "127.0.0.1",
            "POSTGRES_PORT": str(u.port or 5432),
            "POSTGRES_USER": u.username or "postgres",
            "POSTGRES_PASSWORD": u.password or "",
            "POSTGRES_POOL_SIZE": "8",
            "POSTGRES_MAX_OVERFLOW": "8",
            "POSTGRES_LOCK_TIMEOUT": "5",
        }
        return env

    def async_engine(self, **kwargs) -> AsyncEngine:
        if self.is_postgres:
            return create_async_engine(self.async_url, pool_size=10, max_overflow=10, **kwargs)
        engine = create_async_engine(self.async_url, connect_args={"timeout": 30}, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
