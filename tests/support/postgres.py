"""Fresh PostgreSQL databases for tests. Under CI=true an unreachable server fails the run; it is never skipped."""

from __future__ import annotations

import os
import uuid

import psycopg

ADMIN_DSN = os.environ.get("TCR_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")


def use_admin(dsn: str) -> None:
    """Point this session (and the processes it starts) at another server, e.g. a throwaway cluster."""
    global ADMIN_DSN
    ADMIN_DSN = dsn
    os.environ["TCR_TEST_PG_ADMIN"] = dsn


def server_problem() -> str | None:
    try:
        with psycopg.connect(ADMIN_DSN, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"PostgreSQL at {ADMIN_DSN} is unreachable: {exc}"
    return None


def create_database(prefix: str = "tcr_test") -> str:
    """Create an empty database and return its SQLAlchemy-style URL (postgresql://...)."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = ADMIN_DSN.rsplit("/", 1)[0]
    return f"{base}/{name}"


def drop_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
