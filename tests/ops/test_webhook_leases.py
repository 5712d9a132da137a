"""Webhook delivery runs once per database (issue 12, replicas): in the registry and the subsidy service the
DeliveryWorker runs under a `Lease`; of two replicas on one PostgreSQL database one delivers and the other stands
by, and the standby takes over when the leader stops."""

from __future__ import annotations

import contextlib

import pytest
from fastapi import FastAPI

from tests.support.asserts import wait_until
from tests.support.processes import free_port

ADMIN_KEY = "test-admin-key-webhook-leases"


def registry_app(url: str, data_dir) -> FastAPI:
    from tcr_registry.bootstrap import create_app
    from tcr_registry.settings import RegistrySettings

    return create_app(
        RegistrySettings(
            registry_database_url=url, data_dir=data_dir, admin_key=ADMIN_KEY, demo=False, access_log=False
        )
    )


def subsidy_app(url: str, data_dir) -> FastAPI:
    from tcr_subsidy.bootstrap import create_app
    from tcr_subsidy.settings import SubsidySettings

    return create_app(
        SubsidySettings(
            subsidy_database_url=url,
            data_dir=data_dir,
            admin_key=ADMIN_KEY,
            registry_url=f"http://127.0.0.1:{free_port()}",  # nobody there: only the deliveries matter here
        )
    )


@pytest.mark.parametrize("make_app", [registry_app, subsidy_app], ids=["registry", "subsidy"])
async def test_one_replica_delivers_webhooks_and_a_standby_takes_over(make_app, make_pg_database, tmp_path):
    url = make_pg_database("tcr_webhook_lease")
    first, second = make_app(url, tmp_path / "a"), make_app(url, tmp_path / "b")
    apps = (first, second)

    def role(i: int) -> str:  # read when asked: the registry makes its lease at start
        return _delivery_lease(apps[i].state.runtime).role

    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(first.router.lifespan_context(first))
        await wait_until(lambda: _true(role(0) == "leader"), what="the first replica to lead")
        async with second.router.lifespan_context(second):
            await wait_until(lambda: _refused_a_lock(url), what="the second replica to try the lease")
            assert role(1) == "standby"
            await stack.aclose()  # the leader stops: its lock goes with its connection
            await wait_until(lambda: _true(role(1) == "leader"), timeout=5, what="the standby to take over")


def _delivery_lease(runtime):
    """The registry keeps its delivery lease as `webhook_lease`, the subsidy service as `delivery_lease`."""
    return getattr(runtime, "delivery_lease", None) or runtime.webhook_lease


async def _true(value: bool) -> bool:
    return value


async def _refused_a_lock(url: str) -> bool:
    """A session of this database last tried an advisory lock and holds none: a standby that asked and was refused."""
    import psycopg
    from sqlalchemy.engine import make_url

    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        row = await (
            await conn.execute(
                """SELECT count(*) FROM pg_stat_activity a
                   WHERE a.datname = current_database() AND a.query LIKE 'SELECT pg_try_advisory_lock%%'
                     AND NOT EXISTS (SELECT 1 FROM pg_locks l
                                     WHERE l.pid = a.pid AND l.locktype = 'advisory' AND l.granted)"""
            )
        ).fetchone()
    return bool(row and row[0])
