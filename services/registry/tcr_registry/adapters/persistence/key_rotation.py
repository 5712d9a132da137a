"""Master key rotation: every value sealed at rest in the registry's database (per-individual data keys, admin
receipts, webhook signing secrets) is opened with whichever key sealed it and sealed again with the current one.

Resumable and safe to run twice: values the current key already sealed are left alone, each table is rewritten
in one transaction. The services keep working meanwhile when they run with TCR_MASTER_KEY=<new> and
TCR_PREVIOUS_MASTER_KEY=<old> (docs/security.md, "Key rotation").
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, select, update

from tcr_registry.adapters.persistence.models import idempotency_records, personal_keys, webhooks
from tcr_shared.platform.sealing import MasterKey, is_sealed


@dataclass(frozen=True)
class Rotated:
    table: str
    resealed: int


def rotate(engine: Engine, master: MasterKey) -> list[Rotated]:
    subs = webhooks.subscriptions
    columns = [
        (personal_keys, personal_keys.c.sealed_key, [personal_keys.c.subject]),
        (idempotency_records, idempotency_records.c.sealed_body, list(idempotency_records.primary_key.columns)),
        (subs, subs.c.secret, [subs.c.id]),
    ]
    return [Rotated(table.name, _reseal(engine, master, column, keys)) for table, column, keys in columns]


def _reseal(engine: Engine, master: MasterKey, column, keys) -> int:
    count = 0
    with engine.begin() as conn:
        for row in conn.execute(select(column, *keys).where(column.is_not(None))).all():
            value = row[0]
            if master.sealed_by_me(value):
                continue
            plain = master.open_bytes(value) if is_sealed(value) else value.encode()
            where = [key == row[i + 1] for i, key in enumerate(keys)]
            conn.execute(update(column.table).where(*where).values({column.name: master.seal_bytes(plain)}))
            count += 1
    return count
