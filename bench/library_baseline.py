"""Baseline of issue 13's catch-up rows: the eventsourcing library's own projection machinery on the same events.

`projection_runner_rate(database_url)` runs the library's `ProjectionRunner` (eventsourcing.projection, 9.5.x, used
as its documentation shows: a `Projection` whose `process_event` writes into a tracking-recorder-backed view, the
runner subscribing to the application) over the registry's own event store (the `Registry` eventsourcing
Application, PostgreSQL), from the start of its log to its last contract event, and returns events/s. The view
computes the reporting service's county turnover sums (outflow and inflow per area, policy year and category, rolled
up to prefecture and region) with the reporting domain's own rules (`counted_after`, `FigureDeltas`) on the public
form of each event (the registry's `to_feed_event`), so both sides compute the same figures from the same events;
`runner_figures` reads the view's figures for comparison.

As the library does it: one transaction per event (the tracking record, the contract's record, its figure rows).
PostgreSQL only (SQLite's application recorder has no `subscribe()`). The view's tables live in the registry's
database under their own names (`countyturnoverbaseline_*`) and are dropped at the start of each run.

bench/reporting.py uses it as the baseline of the reporting build; bench/subsidy.py can call it on its registry
database for the subsidy catch-up row. Run alone: python bench/library_baseline.py REGISTRY_DATABASE_URL.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from functools import singledispatchmethod
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eventsourcing.persistence import Tracking  # noqa: E402
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder  # noqa: E402
from eventsourcing.projection import Projection, ProjectionRunner  # noqa: E402
from eventsourcing.utils import get_topic  # noqa: E402
from psycopg.sql import SQL, Identifier  # noqa: E402

from tcr_registry.adapters.feeds.public_events import is_public_class, to_feed_event  # noqa: E402
from tcr_registry.adapters.persistence.event_store import Registry  # noqa: E402
from tcr_registry.domain.contract import Contract  # noqa: E402
from tcr_reporting.domain.figures import CountedContract, FigureDeltas, counted_after  # noqa: E402
from tcr_shared.platform.database import Database  # noqa: E402

NAME = "CountyTurnoverBaseline"
PREFIX = NAME.lower()
FIGURES = f"{PREFIX}_figures"
COUNTED = f"{PREFIX}_counted"
TRACKING = f"{PREFIX}_tracking"
# The registry's public contract events (the feed's events); registration-book events are never delivered.
CONTRACT_TOPICS = tuple(
    get_topic(cls)
    for cls in vars(Contract).values()
    if isinstance(cls, type) and issubclass(cls, Contract.Event) and is_public_class(cls)
)


class CountyTurnoverView(PostgresTrackingRecorder):
    """The materialised view: figures per (area, year, side, category) and each contract's counted record, written
    in the same transaction as the tracking record (the library's exactly-once pattern)."""

    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        schema = Identifier(self.datastore.schema)
        self._figures = SQL("{0}.{1}").format(schema, Identifier(FIGURES))
        self._counted = SQL("{0}.{1}").format(schema, Identifier(COUNTED))
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {0} (region text, year int, side text, category text, count bigint, "
                "amount_fen bigint, technology_amount_fen bigint, PRIMARY KEY (region, year, side, category))"
            ).format(self._figures)
        )
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {0} (contract_id text PRIMARY KEY, year int, category text, "
                "amount_fen bigint, technology_amount_fen bigint, seller_region text, buyer_region text)"
            ).format(self._counted)
        )

    def count(self, contract_id: str, event_type: str, data: dict, tracking: Tracking) -> None:
        """Apply one event: its tracking record, the contract's record and the figures it moves, in one
        transaction."""
        with self.datastore.transaction(commit=True) as curs:
            self._insert_tracking(curs, tracking)
            curs.execute(
                SQL(
                    "SELECT year, category, amount_fen, technology_amount_fen, seller_region, buyer_region "
                    "FROM {0} WHERE contract_id = %s"
                ).format(self._counted),
                (contract_id,),
                prepare=True,
            )
            row = curs.fetchone()
            before = CountedContract(**row) if row else None
            after = counted_after(event_type, data, before)
            if after == before:
                return
            deltas = FigureDeltas()
            deltas.move(before, after)
            curs.executemany(
                SQL(
                    "INSERT INTO {0} VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (region, year, side, category) "
                    "DO UPDATE SET count = {0}.count + EXCLUDED.count, "
                    "amount_fen = {0}.amount_fen + EXCLUDED.amount_fen, "
                    "technology_amount_fen = {0}.technology_amount_fen + EXCLUDED.technology_amount_fen"
                ).format(self._figures),
                [(*key, count, amount, technology) for key, count, amount, technology in deltas.items()],
            )
            if after is None:
                curs.execute(SQL("DELETE FROM {0} WHERE contract_id = %s").format(self._counted), (contract_id,))
            else:
                curs.execute(
                    SQL(
                        "INSERT INTO {0} VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (contract_id) DO UPDATE SET "
                        "year = EXCLUDED.year, category = EXCLUDED.category, amount_fen = EXCLUDED.amount_fen, "
                        "technology_amount_fen = EXCLUDED.technology_amount_fen, "
                        "seller_region = EXCLUDED.seller_region, buyer_region = EXCLUDED.buyer_region"
                    ).format(self._counted),
                    (contract_id, *after),
                    prepare=True,
                )


class CountyTurnoverProjection(Projection[CountyTurnoverView]):
    name = NAME
    topics = CONTRACT_TOPICS

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        # The public form of the event, as the feed serves it; the reporting rules read that form.
        event = to_feed_event(domain_event, tracking.notification_id)
        self.view.count(str(domain_event.originator_id), event.type, event.data, tracking)


def _dsn(database_url: str) -> str:
    """A libpq connection string for psycopg from a SQLAlchemy-style URL."""
    from sqlalchemy.engine import make_url

    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def _drop_view(database_url: str) -> None:
    import psycopg

    with psycopg.connect(_dsn(database_url), autocommit=True) as conn:
        for table in (FIGURES, COUNTED, TRACKING):
            conn.execute(SQL("DROP TABLE IF EXISTS {0}").format(Identifier(table)))


def _contract_events(database_url: str) -> tuple[int, int]:
    """(number of public contract events, notification id of the last) in the registry's log."""
    import psycopg

    with psycopg.connect(_dsn(database_url)) as conn:
        count, last = conn.execute(
            "SELECT count(*), coalesce(max(notification_id), 0) FROM registry_events WHERE topic = ANY(%s)",
            (list(CONTRACT_TOPICS),),
        ).fetchone()
    return int(count), int(last)


def projection_runner_rate(
    database_url: str, *, timeout: float = 1800.0, report: Callable[[str], None] = print
) -> float:
    """Events/s of the library's ProjectionRunner computing county turnover sums over the registry's event store at
    `database_url` (PostgreSQL), from position 0 to its last contract event. Prints progress through `report`."""
    database = Database(database_url)
    if not database.is_postgres:
        raise ValueError("the ProjectionRunner baseline needs PostgreSQL (SQLite's recorder cannot subscribe)")
    _drop_view(database_url)
    events, last = _contract_events(database_url)
    report(f"eventsourcing ProjectionRunner over the registry's event store: {events:,} contract events, to {last}")
    env = database.eventsourcing_env()
    started = time.perf_counter()
    with ProjectionRunner(
        application_class=Registry,
        projection_class=CountyTurnoverProjection,
        view_class=CountyTurnoverView,
        env=env,
    ) as runner:
        while True:
            try:
                runner.wait(last, timeout=5.0)
                break
            except TimeoutError:
                reached = runner.view.max_tracking_id(runner.app.name) or 0
                elapsed = time.perf_counter() - started
                report(f"  ProjectionRunner at {reached:,} of {last:,} ({elapsed:.0f}s)")
                if elapsed > timeout:
                    raise
        seconds = time.perf_counter() - started
    rate = events / seconds
    report(f"eventsourcing ProjectionRunner: {events:,} events in {seconds:.1f}s = {rate:,.0f} events/s")
    return rate


def runner_figures(database_url: str) -> dict[tuple[str, int, str, str], tuple[int, int, int]]:
    """The view's non-zero figures after `projection_runner_rate`: to compare with the reporting projection's."""
    import psycopg

    with psycopg.connect(_dsn(database_url)) as conn:
        rows = conn.execute(
            SQL("SELECT region, year, side, category, count, amount_fen, technology_amount_fen FROM {0}").format(
                Identifier(FIGURES)
            )
        ).fetchall()
    return {tuple(r[:4]): tuple(r[4:]) for r in rows if any(r[4:])}


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python bench/library_baseline.py REGISTRY_DATABASE_URL (PostgreSQL)")
    projection_runner_rate(sys.argv[1])
