"""The writer's group commit: commands submitted together are handed over together, committed in the order they
were submitted, never more than max_batch to a transaction, and each answered with its own position."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from tcr_registry.adapters.http.schemas import ContractIn
from tcr_registry.adapters.persistence import migrate
from tcr_registry.adapters.persistence.event_store import Registry
from tcr_registry.adapters.persistence.writer import Writer
from tcr_registry.application import commands
from tcr_registry.application.actor import PointActor
from tcr_shared.platform.audit import AuditEntry
from tcr_shared.platform.database import Database
from tests.support.registry import contract_body


async def test_commands_submitted_together_commit_in_order_within_max_batch(database_url, tmp_path):
    database = Database.for_service(database_url, tmp_path, "registry")
    await asyncio.to_thread(migrate.upgrade, database)
    app = Registry(database.eventsourcing_env())
    writer = Writer(app, max_batch=4)
    writer.start()
    try:
        terms = ContractIn.model_validate(contract_body()).terms()
        actor = PointActor("p1", "6400", "01")
        ids = [uuid.uuid4() for _ in range(10)]
        entry = AuditEntry(datetime.now(UTC), "k", "point", "p1", "contract.submit", None, "POST", "/", None, 201)
        submitted = [writer.execute(commands.submit(i, actor, terms, datetime.now(UTC)), audit=entry) for i in ids]
        answers = await asyncio.gather(*submitted)  # all ten reach the writer in one pass of the loop
        positions = [answer.position for answer in answers]
        assert [answer.value.id for answer in answers] == ids
        assert positions == sorted(positions) and len(set(positions)) == 10  # submission order is commit order
        assert writer.commands == 10
        assert writer.batches == 3  # 4 + 4 + 2: one hand-over, split at max_batch
        # PostgreSQL stores each command's audit entry with its events; on SQLite the middleware does it.
        assert [answer.audited for answer in answers] == [database.is_postgres] * 10
        stored = app.recorder.select_notifications(positions[0], 10)
        assert [(n.id, n.originator_id) for n in stored] == list(zip(positions, ids, strict=True))
    finally:
        await asyncio.to_thread(writer.stop)
        app.close()
