"""What counts as an outage of a service's database: the errors that say "the database cannot be reached right now"
(connection refused, reset or invalidated, a server shutting down, no connection free in the pool in time), as
opposed to errors of the request or of the code. Outages answer 503 with Retry-After (problems.py), never 500: the
same request may succeed in a moment, and a client or load balancer should retry it."""

from __future__ import annotations

import importlib
import socket

RETRY_AFTER_SECONDS = 2

# Classes named by module and name so that this module imports no database library: each is looked up only if its
# library is installed (the partner kit has none of them).
_OUTAGE_CLASSES = (
    ("sqlalchemy.exc", "OperationalError"),
    ("sqlalchemy.exc", "InterfaceError"),
    ("sqlalchemy.exc", "TimeoutError"),  # no connection free in the pool within pool_timeout
    ("psycopg", "OperationalError"),  # also psycopg_pool.PoolTimeout
    ("psycopg", "InterfaceError"),
    ("asyncpg.exceptions", "PostgresConnectionError"),
    ("asyncpg.exceptions", "InterfaceError"),
    ("asyncpg.exceptions", "CannotConnectNowError"),  # the server is starting or shutting down
    ("asyncpg.exceptions", "AdminShutdownError"),
    ("asyncpg.exceptions", "CrashShutdownError"),
    ("asyncpg.exceptions", "TooManyConnectionsError"),
    ("eventsourcing.persistence", "OperationalError"),
    ("eventsourcing.persistence", "InterfaceError"),
)
# Where the handlers must listen so that the classes above (and wrappers of them) reach `is_outage`.
_HANDLED_BASES = (
    ("sqlalchemy.exc", "SQLAlchemyError"),
    ("psycopg", "Error"),
    ("asyncpg.exceptions._base", "PostgresError"),
    ("asyncpg.exceptions", "InterfaceError"),
    ("eventsourcing.persistence", "PersistenceError"),
)


def _load(names: tuple[tuple[str, str], ...]) -> tuple[type[BaseException], ...]:
    found = []
    for module, name in names:
        try:
            found.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    return tuple(found)


def outage_classes() -> tuple[type[BaseException], ...]:
    return _load(_OUTAGE_CLASSES)


def handled_bases() -> tuple[type[BaseException], ...]:
    """The exception classes a web app must handle to see every database outage (plus OSError)."""
    return (*_load(_HANDLED_BASES), OSError)


def is_outage(exc: BaseException) -> bool:
    """True when `exc`, or an exception it was raised from, says the database is unreachable for now."""
    classes = outage_classes()
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _is_outage_itself(current, classes):
            return True
        current = current.__cause__ or current.__context__
    return False


def _is_outage_itself(exc: BaseException, classes: tuple[type[BaseException], ...]) -> bool:
    if getattr(exc, "connection_invalidated", False):  # SQLAlchemy: the connection was lost mid-statement
        return True
    if isinstance(exc, ConnectionError | TimeoutError | socket.gaierror):
        return True
    return isinstance(exc, classes)
