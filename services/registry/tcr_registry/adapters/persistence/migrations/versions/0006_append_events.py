"""registry_append_events(): a batch of events (and its commands' idempotency receipts and audit entries) in one
statement

Revision ID: 0006_append_events
Revises: 0005_import_jobs

Why: the eventsourcing library appends a batch in a pipelined transaction of six statements (BEGIN, lock timeout,
LOCK TABLE, NOTIFY, an INSERT of one array of a composite type that psycopg dumps in Python, COMMIT), and the
receipts in one more. On the writer thread that cost about 350 microseconds of CPU per batch whatever its size,
plus 30 per event (docs/performance.md, `POST /v1/contracts`). This function does the same in one round trip
(ReceiptsPostgresRecorder calls it on its autocommit connection: the one statement is its own transaction): the
same lock timeout, the same EXCLUSIVE table lock (so notification ids are drawn in commit order and no feed reader
ever passes a position that is not yet committed), the same NOTIFY, the events from parallel arrays, and the
receipts (one JSON array) in the same transaction. The events table is the library's (Registry.name = "registry").
"""

from alembic import op

revision = "0006_append_events"
down_revision = "0005_import_jobs"
branch_labels = None
depends_on = None

APPEND_EVENTS = """
CREATE OR REPLACE FUNCTION registry_append_events(
    p_ids uuid[], p_versions bigint[], p_topics text[], p_states bytea[], p_lock_timeout text, p_receipts json,
    p_audit json
) RETURNS SETOF bigint LANGUAGE plpgsql AS $$
DECLARE
    positions bigint[];
BEGIN
    PERFORM set_config('lock_timeout', p_lock_timeout, true);
    LOCK TABLE registry_events IN EXCLUSIVE MODE;
    NOTIFY registry_events;
    -- Under the lock only this transaction draws from the sequence, row by row in input order: sorted, the
    -- positions are the events' in the order given.
    WITH inserted AS (
        INSERT INTO registry_events (originator_id, originator_version, topic, state)
        SELECT * FROM unnest(p_ids, p_versions, p_topics, p_states)
        RETURNING notification_id
    )
    SELECT array_agg(notification_id ORDER BY notification_id) INTO positions FROM inserted;
    INSERT INTO idempotency_records (key_id, idempotency_key, request_hash, status_code, headers, reference, position)
    SELECT r.key_id, r.idempotency_key, r.request_hash, r.status_code, '{}'::json, r.reference,
           positions[r.last_event + 1]
    FROM json_to_recordset(p_receipts) AS r(
        key_id text, idempotency_key text, request_hash text, status_code integer, reference json, last_event integer
    )
    ON CONFLICT DO NOTHING;
    -- The audit trail's entries of these writes, in their transaction: one commit answers for both.
    INSERT INTO audit_log (at, key_id, role, point_id, action, target, method, path, address, outcome)
    SELECT a.at, a.key_id, a.role, a.point_id, a.action, a.target, a.method, a.path, a.address, a.outcome
    FROM json_to_recordset(p_audit) AS a(
        at timestamptz, key_id text, role text, point_id text, action text, target text, method text, path text,
        address text, outcome integer
    );
    RETURN QUERY SELECT p.position FROM unnest(positions) WITH ORDINALITY AS p(position, n) ORDER BY p.n;
END;
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(APPEND_EVENTS)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "DROP FUNCTION IF EXISTS registry_append_events(uuid[], bigint[], text[], bytea[], text, json, json)"
        )
