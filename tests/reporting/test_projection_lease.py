"""The projection lease on both backends: one writer of the projection at a time (the service's leader replica or
a rebuild), a standby takes the lease when the holder lets go, and a rebuild is refused while it is held."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from tcr_reporting.adapters.persistence.projection_lease import ProjectionBusy, ProjectionLease
from tcr_shared.platform.database import Database

# The shared lease gives its lock check max(1, 3 x check_every) seconds: 0.5 leaves a loaded machine 2 s, so the
# leader does not step down over a slow SELECT 1 during the test.
CHECK_EVERY = 0.5


async def eventually(check, what: str, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def running(lease: ProjectionLease, work):
    task = asyncio.create_task(lease.run_while_leader(work))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_one_writer_at_a_time(database_url) -> None:
    database = Database(database_url)
    service, replica, rebuild = (ProjectionLease(database, check_every=CHECK_EVERY) for _ in range(3))
    working: list[str] = []

    def work(name: str):
        async def run() -> None:
            working.append(name)
            await asyncio.Event().wait()  # a follower: runs until cancelled

        return run

    async with running(replica, work("replica")):
        async with running(service, work("service")):
            await eventually(lambda: "leader" in (service.role, replica.role), "one replica to lead")
            leader, standby = (service, replica) if service.role == "leader" else (replica, service)
            assert leader.as_dict()["leader_since"] is not None and standby.as_dict()["leader_since"] is None
            with pytest.raises(ProjectionBusy, match="Stop every reporting replica"):
                async with rebuild.hold():
                    pytest.fail("a rebuild ran while the service held the projection")
            await asyncio.sleep(3 * CHECK_EVERY)  # several of the standby's tries
            assert standby.role == "standby" and len(working) == 1
        # `service` has stopped (cancelled: its lock is released); the replica leads now, whichever led before
        await eventually(lambda: replica.role == "leader", "the standby to take over")
        assert working[-1] == "replica"

    service = ProjectionLease(database, check_every=CHECK_EVERY)  # a service started again (a new process)
    async with rebuild.hold():
        with pytest.raises(ProjectionBusy):
            async with ProjectionLease(database).hold():
                pass
        async with running(service, work("during the rebuild")):
            await asyncio.sleep(3 * CHECK_EVERY)
            assert service.role == "standby"  # the service waits for the rebuild to finish
    service = ProjectionLease(database, check_every=CHECK_EVERY)
    async with running(service, work("after the rebuild")):
        await eventually(lambda: service.role == "leader", "the service to lead after the rebuild")
    assert "during the rebuild" not in working and working[-1] == "after the rebuild"
