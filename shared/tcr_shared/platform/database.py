"""One database URL per service, turned into what each library needs: SQLAlchemy (async and sync, for
alembic) and the eventsourcing library's environment. PostgreSQL in production; SQLite files by default."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import BigInteger, Column, Integer, Table, Text, TextClause, event, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, create_async_engine

# While PostgreSQL is down, a request must fail fast (503, see outages.py) instead of waiting out the libraries'
# defaults (30 s for a pooled connection, 60 s to connect): a new connection gets CONNECT_TIMEOUT to be made, a
# request POOL_TIMEOUT to get one from the pool. Together they bound an answer to about 10 s.
CONNECT_TIMEOUT = 5
POOL_TIMEOUT = 5
EVENTSOURCING_POOL_WAIT = 1
READY_TIMEOUT = 2.0


@dataclass(frozen=True)
class Database:
    url: str

    @classmethod
    def for_service(cls, url: str | None, data_dir: Path, service: str) -> Database:
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
        with self._migration_lock(str(script_location)):
            command.upgrade(config, "head")

    @contextmanager
    def _migration_lock(self, name: str) -> Iterator[None]:
        """Replicas that start together migrate one at a time: on PostgreSQL a session advisory lock (keyed by the
        migrations folder) is held around the upgrade, so the second replica finds the schema at head. SQLite
        serialises writers itself."""
        if not self.is_postgres:
            yield
            return
        import psycopg

        service = next((part for part in reversed(Path(name).parts) if part.startswith("tcr_")), name)
        key = int.from_bytes(hashlib.sha256(f"tcr-migrations:{service}".encode()).digest()[:8], "big", signed=True)
        dsn = self._parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(dsn, autocommit=True) as lock:
            lock.execute("SELECT pg_advisory_lock(%s)", (key,))
            try:
                yield
            finally:
                lock.execute("SELECT pg_advisory_unlock(%s)", (key,))

    def eventsourcing_env(self) -> dict[str, str]:
        if not self.is_postgres:
            return {
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "SQLITE_DBNAME": self.sqlite_path,
                "SQLITE_LOCK_TIMEOUT": "10",
            }
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
            # psycopg_pool's wait for a connection (also while it reconnects to a server that is down), in whole
            # seconds; the eventsourcing library tries each operation 10 times (0.2 s apart), so 1 s bounds a
            # write during an outage to about 12 s, and a busy pool still gets 10 chances.
            "POSTGRES_CONNECT_TIMEOUT": str(EVENTSOURCING_POOL_WAIT),
        }
        return env

    def async_engine(self, **kwargs) -> AsyncEngine:
        if self.is_postgres:
            kwargs.setdefault("pool_timeout", POOL_TIMEOUT)
            kwargs.setdefault("connect_args", {"timeout": CONNECT_TIMEOUT})
            return create_async_engine(self.async_url, pool_size=10, max_overflow=10, **kwargs)
        engine = create_async_engine(self.async_url, connect_args={"timeout": 30}, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine


def database_ready(engine: AsyncEngine, timeout: float = READY_TIMEOUT) -> Callable[[], Awaitable[bool]]:
    """A readiness check for `instrument(app, service, ready=...)`: True when `SELECT 1` answers within `timeout`
    seconds, False while the database is unreachable (so /readyz answers 503 and recovers by itself)."""

    async def ready() -> bool:
        try:
            async with asyncio.timeout(timeout), engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception:  # any failure means "not ready now"; /readyz is asked again in a moment
            return False
        return True

    return ready


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


# --- PostgreSQL set-based writes ------------------------------------------------------------------------------
# A page of rows goes to PostgreSQL in ONE statement, one array per column (unnest), instead of one parameter set
# per row (executemany): a single round trip, and no per-row parameter processing in SQLAlchemy.


def is_postgres(connection: AsyncSession | AsyncConnection) -> bool:
    return (
        connection.get_bind().dialect.name == "postgresql"
        if isinstance(connection, AsyncSession)
        else connection.dialect.name == "postgresql"
    )


def pg_array_type(column: Column) -> str:
    if isinstance(column.type, BigInteger):
        return "BIGINT[]"
    if isinstance(column.type, Integer):
        return "INTEGER[]"
    return "TEXT[]" if isinstance(column.type, Text) else "VARCHAR[]"


def pg_unnest(table: Table, names: list[str]) -> str:
    """`CAST(:a AS T[]), CAST(:b AS U[]), ...` for `unnest(...)` over the named columns of `table`."""
    return ", ".join(f"CAST(:{n} AS {pg_array_type(table.c[n])})" for n in names)


def pg_upsert(table: Table, *, add: tuple[str, ...] = ()) -> TextClause:
    """INSERT ... SELECT FROM unnest(...) ON CONFLICT (primary key) DO UPDATE: each column is replaced, or, for
    the columns named in `add`, increased by the new value. Execute with `pg_columns(table, rows)`."""
    return text(_upsert_sql(table, add, pg_unnest(table, [c.name for c in table.columns])))


def pg_upsert_sql(table: Table, *, add: tuple[str, ...] = ()) -> str:
    """`pg_upsert` as positional SQL for the asyncpg connection itself: `driver.execute(sql, *columns)`, one
    list per column in the table's order. For batches of thousands of rows, where SQLAlchemy's handling of
    each array parameter costs more than the statement itself."""
    arrays = ", ".join(f"${i}::{pg_array_type(c)}" for i, c in enumerate(table.columns, start=1))
    return _upsert_sql(table, add, arrays)


def _upsert_sql(table: Table, add: tuple[str, ...], arrays: str) -> str:
    names = [c.name for c in table.columns]
    keys = [c.name for c in table.primary_key.columns]
    updates = ", ".join(
        f"{n} = {table.name}.{n} + EXCLUDED.{n}" if n in add else f"{n} = EXCLUDED.{n}" for n in names if n not in keys
    )
    return (
        f"INSERT INTO {table.name} ({', '.join(names)}) SELECT * FROM unnest({arrays}) "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}"
    )


async def pg_driver(session: AsyncSession) -> Any:
    """The asyncpg connection under `session`, inside the session's transaction (COPY, positional array
    parameters): what is written through it commits or rolls back with the session's other writes."""
    connection = await session.connection()
    driver = (await connection.get_raw_connection()).driver_connection
    if not driver.is_in_transaction():
        # SQLAlchemy's asyncpg adapter opens the database transaction at its first statement: run one, or a
        # write through the driver would commit on its own.
        await session.execute(text("SELECT 1"))
    if not driver.is_in_transaction():
        raise RuntimeError("the session has no open transaction to write in")
    return driver


async def pg_copy(session: AsyncSession, table: Table, rows: list[tuple]) -> None:
    """Insert new rows (tuples in the table's column order) with COPY, in the session's transaction: the fastest
    way into PostgreSQL for rows known not to exist yet (a duplicate fails the transaction, as an INSERT would)."""
    if rows:
        driver = await pg_driver(session)
        await driver.copy_records_to_table(table.name, records=rows, columns=[c.name for c in table.columns])


def pg_columns(table: Table, rows: list[dict]) -> dict[str, list]:
    """The parameters of `pg_upsert`: one list per column."""
    return {c.name: [r[c.name] for r in rows] for c in table.columns}


def pg_delete(table: Table, column: str) -> TextClause:
    """DELETE the rows of `table` whose `column` is one of an array `:keys`, in one statement (joined against
    `unnest` for the reason given at `pg_lookup`)."""
    return text(
        f"DELETE FROM {table.name} AS t USING unnest(CAST(:keys AS VARCHAR[])) AS k(key) WHERE t.{column} = k.key"
    )


def pg_lookup(table: Table, column: str) -> TextClause:
    """Rows of `table` whose `column` is one of an array `:keys`, joined against `unnest` rather than written as
    `= ANY(:keys)`: asyncpg prepares statements and PostgreSQL soon switches to a generic plan, in which
    `= ANY($1)` cannot hash the array and compares every row with every key; the join is a hash or index lookup
    whatever the plan."""
    return text(
        f"SELECT t.* FROM {table.name} AS t JOIN unnest(CAST(:keys AS VARCHAR[])) AS k(key) ON t.{column} = k.key"
    )


_LOOKUPS: dict[tuple[str, str], TextClause] = {}


async def rows_in(session: AsyncSession, column: Column, keys: list[str], *, chunk: int = 500) -> list:
    """The rows of `column`'s table whose `column` is one of `keys`: on PostgreSQL one round trip whatever the
    number of keys (`pg_lookup`); elsewhere IN lists of at most `chunk` keys."""
    if not keys:
        return []
    table = column.table
    if is_postgres(session):
        lookup = _LOOKUPS.get((table.name, column.name))
        if lookup is None:
            lookup = _LOOKUPS[(table.name, column.name)] = pg_lookup(table, column.name)
        return list((await session.execute(lookup, {"keys": keys})).all())
    rows: list = []
    for start in range(0, len(keys), chunk):
        rows.extend((await session.execute(select(table).where(column.in_(keys[start : start + chunk])))).all())
    return rows
