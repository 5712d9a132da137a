"""The reporting database: figures per (region, year, side, category), the per-contract record of what was
counted, and the feed positions (shared `tracking_table`), all written in the same transaction per page."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, String, Table

from tcr_shared.feeds.projection_store import tracking_table
from tcr_shared.platform.audit import audit_table

metadata = MetaData()

feed_tracking = tracking_table(metadata)
# Append-only (the migration's triggers refuse UPDATE and DELETE): every write and administrative act.
audit_log = audit_table(metadata)

# One row per (region, year, side, category). region is a county, prefecture or 640000: roll-ups are kept
# incrementally beside the counties, so a request reads a handful of rows and never sums events.
# side: outflow | inflow (category = contract category) | subsidy (category = programme).
# Money in integer fen: exact on SQLite and PostgreSQL alike.
figures = Table(
    "figures",
    metadata,
    Column("region", String(6), primary_key=True),
    Column("year", Integer, primary_key=True),
    Column("side", String(16), primary_key=True),
    Column("category", String(32), primary_key=True),
    Column("count", BigInteger, nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("technology_amount_fen", BigInteger, nullable=False),
    Index("ix_figures_year_side", "year", "side"),
)

# What each contract currently counts for (absent: counts nowhere). An amendment subtracts this row's
# figures and adds the new ones; a revocation subtracts them and deletes the row.
counted_contracts = Table(
    "counted_contracts",
    metadata,
    Column("contract_id", String(64), primary_key=True),
    Column("year", Integer, nullable=False),
    Column("category", String(32), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("technology_amount_fen", BigInteger, nullable=False),
    Column("seller_region", String(6), nullable=True),
    Column("buyer_region", String(6), nullable=True),
    Column("position", BigInteger, nullable=False),
)

# What each award (one beneficiary, programme and contract) currently counts for. An award event carries the
# award after it; subtracting the stored row and adding the new one also moves an award whose beneficiary
# changed region in an amendment (such an event has delta 0.00 but a new region).
counted_awards = Table(
    "counted_awards",
    metadata,
    Column("award_id", String(64), primary_key=True),
    Column("region", String(6), nullable=False),
    Column("year", Integer, nullable=False),
    Column("programme", String(32), nullable=False),
    Column("award_fen", BigInteger, nullable=False),
)

FEED_REGISTRY = "registry"
FEED_SUBSIDY = "subsidy"
