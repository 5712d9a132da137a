"""The subsidy service's tables. Money is stored as whole fen (BIGINT): exact on SQLite and PostgreSQL alike."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, String, Table, Text

from tcr_shared.feeds.projection_store import tracking_table
from tcr_shared.partners.webhooks import webhook_tables
from tcr_shared.platform.audit import audit_table

metadata = MetaData()

feed_tracking = tracking_table(metadata)
webhooks = webhook_tables(metadata)
# Append-only (the migration's triggers refuse UPDATE and DELETE): every write and administrative act.
audit_log = audit_table(metadata)

contracts = Table(
    "subsidy_contracts",
    metadata,
    Column("contract_id", String(64), primary_key=True),
    Column("status", String(20), nullable=False),
    Column("registration_number", String(16)),
    Column("policy_year", Integer),
    Column("rule_set", String(64)),
    Column("certified_at", String(40)),
    Column("result_id", String(200)),
    Column("cause_position", BigInteger, nullable=False),
    Column("explanation", Text, nullable=False),
    Column("considered", Text, nullable=False),  # JSON list
)

awards = Table(
    "subsidy_awards",
    metadata,
    Column("award_id", String(36), primary_key=True),
    Column("contract_id", String(64), nullable=False, index=True),
    Column("registration_number", String(16)),
    Column("beneficiary", String(18), nullable=False),
    Column("beneficiary_name", String(500)),
    Column("beneficiary_kind", String(40), nullable=False),
    Column("beneficiary_region", String(6), nullable=False),
    Column("programme", String(40), nullable=False),
    Column("policy_year", Integer, nullable=False),
    Column("rule_set", String(64), nullable=False),
    Column("clause", String(40), nullable=False),
    Column("cap_key", String(300), nullable=False),
    Column("project", String(250)),
    Column("base_fen", BigInteger, nullable=False),
    Column("rate", String(20), nullable=False),
    Column("entitlement_fen", BigInteger, nullable=False),
    Column("award_fen", BigInteger, nullable=False),
    Column("status", String(20), nullable=False),
    Column("cap_fen", BigInteger, nullable=False),
    Column("explanation", Text, nullable=False),
    Column("decided_position", BigInteger, nullable=False),
    Column("updated_position", BigInteger, nullable=False),
    Index("ix_subsidy_awards_beneficiary_year", "beneficiary", "policy_year"),
    Index("ix_subsidy_awards_year_programme", "policy_year", "programme"),
)

caps = Table(
    "subsidy_caps",
    metadata,
    Column("cap_key", String(300), primary_key=True),
    Column("programme", String(40), nullable=False),
    Column("beneficiary", String(18), nullable=False, index=True),
    Column("policy_year", Integer),
    Column("project", String(250)),
    Column("used_fen", BigInteger, nullable=False),
)

# The service's own public feed: append-only, written only by the single follower in the same transaction as
# the decisions, so positions are committed in order and no reader can skip one.
award_events = Table(
    "subsidy_award_events",
    metadata,
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    Column("id", String(36), nullable=False, unique=True),
    Column("type", String(100), nullable=False),
    Column("time", String(40), nullable=False),
    Column("subject", String(64), nullable=False),
    Column("award_id", String(36), nullable=False, index=True),
    Column("cause_position", BigInteger, nullable=False),
    Column("data", Text, nullable=False),
)

skipped_events = Table(
    "subsidy_skipped_events",
    metadata,
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    Column("event_id", String(100), nullable=False),
    Column("type", String(200), nullable=False),
    Column("reason", Text, nullable=False),
)

# Policy what-if simulations (issue 14), kept so that a finding can be cited: who ran it, when, the candidate rule
# book and the comparison (JSON). Not derived from the feed: a rebuild (`wipe`) leaves them alone.
simulations = Table(
    "subsidy_simulations",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("created_at", String(40), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("from_year", Integer, nullable=False),
    Column("to_year", Integer, nullable=False),
    Column("registry_position", BigInteger, nullable=True),  # null while a job runs
    Column("candidate", Text, nullable=False),  # JSON: the candidate's rule sets, in the API's shape
    Column("result", Text, nullable=True),  # JSON: the comparison (null until a job is done)
    # A long simulation is a job (migration 0005_jobs): running -> done | failed. A job a crash left running
    # reads `failed` once the service starts again (SqlSimulationStore.fail_unfinished).
    Column("status", String(16), nullable=False, server_default="done"),
    Column("progress", Text, nullable=True),  # JSON: {stage, done, total} last reached
    Column("error", Text, nullable=True),  # why a job failed
)
