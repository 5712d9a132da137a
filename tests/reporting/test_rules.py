"""The pure metrics rules, with hand-computed figures."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from tcr_reporting.domain.calendar import due_date, is_provisional, year_in_range
from tcr_reporting.domain.figures import (
    CountedAward,
    CountedContract,
    FigureDeltas,
    FigureError,
    areas_of,
    counted_after,
    wire_fen,
)
from tcr_reporting.domain.ranking import RankEntry, rank, ranking
from tcr_shared.language.money import fen_text
from tests.reporting.builders import Feed, award, terms


def test_money_is_exact_fen() -> None:
    assert wire_fen("1234.56") == 123456
    assert wire_fen("-1800000.00") == -180000000
    assert fen_text(123456) == "1234.56"
    assert fen_text(-5) == "-0.05"
    assert fen_text(10**17 + 1) == "1000000000000000.01"  # beyond a double's exact range
    with pytest.raises(FigureError):
        wire_fen("1.005")
    with pytest.raises(FigureError):
        wire_fen(12.5)
    for text in ("Infinity", "NaN", "12,50", ""):
        with pytest.raises(FigureError):
            wire_fen(text)


def test_areas_roll_up_county_prefecture_region_and_ignore_outside() -> None:
    assert areas_of("640104") == ["640104", "640100", "640000"]
    assert areas_of("640100") == ["640100", "640000"]
    assert areas_of("110108") == []
    assert areas_of(None) == []


def test_same_county_contract_counts_on_both_sides_and_once_per_side_above() -> None:
    deltas = FigureDeltas()
    deltas.move(None, CountedContract(2025, "service", 20000, 15000, "640302", "640302"))
    got = {key: (c, a, t) for key, c, a, t in deltas.items()}
    for area in ("640302", "640300", "640000"):
        assert got[(area, 2025, "outflow", "service")] == (1, 20000, 15000)
        assert got[(area, 2025, "inflow", "service")] == (1, 20000, 15000)
    assert len(got) == 6


def test_amendment_moves_figures_between_counties_and_categories_in_the_original_year() -> None:
    feed = Feed()
    before_terms = terms("640104", "640181", "4000000.00", "3000000.00", "licence")
    feed.certify("k", before_terms, 2025)
    certified = counted_after(feed.events[-1].type, feed.events[-1].data, None)
    after_terms = terms("640205", "640181", "4500000.00", "3000000.00", "transfer")
    amended = feed.amend("k", before_terms, after_terms, 2025)
    amended.data["policy_year"] = None  # an amendment without a year keeps the original one
    now = counted_after(amended.type, amended.data, certified)
    assert now == CountedContract(2025, "transfer", 450000000, 300000000, "640205", "640181")
    deltas = FigureDeltas()
    deltas.move(certified, now)
    got = {key: (c, a, t) for key, c, a, t in deltas.items()}
    assert got[("640104", 2025, "outflow", "licence")] == (-1, -400000000, -300000000)
    assert got[("640100", 2025, "outflow", "licence")] == (-1, -400000000, -300000000)
    assert got[("640205", 2025, "outflow", "transfer")] == (1, 450000000, 300000000)
    assert got[("640200", 2025, "outflow", "transfer")] == (1, 450000000, 300000000)
    assert got[("640000", 2025, "outflow", "licence")] == (-1, -400000000, -300000000)
    assert got[("640000", 2025, "outflow", "transfer")] == (1, 450000000, 300000000)
    assert got[("640181", 2025, "inflow", "licence")] == (-1, -400000000, -300000000)
    assert got[("640181", 2025, "inflow", "transfer")] == (1, 450000000, 300000000)


def test_revocation_rejection_and_submission_count_nowhere() -> None:
    feed = Feed()
    t = terms("640104", "640181", "100.00", "50.00")
    submitted = feed.submit("a", t)
    assert counted_after(submitted.type, submitted.data, None) is None
    feed.certify("b", t, 2024)
    counted = counted_after(feed.events[-1].type, feed.events[-1].data, None)
    assert counted is not None and counted.year == 2024
    revoked = feed.revoke("b", t, 2024)
    assert counted_after(revoked.type, revoked.data, counted) is None
    rejected = feed.reject("c", t)
    assert counted_after(rejected.type, rejected.data, None) is None
    # an unknown event type changes nothing
    assert counted_after("tcr.registry.point.opened.v1", {"status": "x"}, counted) == counted


def test_award_records_net_of_claw_backs_and_follow_the_beneficiary() -> None:
    deltas = FigureDeltas()
    decided = CountedAward.from_event(award(1, "640181", "import", "1800000.00", 2025, award_id="A").data)
    deltas.move_award(None, decided)
    clawed = CountedAward.from_event(
        award(2, "640181", "import", "-1800000.00", 2025, award="0.00", kind="clawed_back", award_id="A").data
    )
    deltas.move_award(decided, clawed)
    institution = CountedAward.from_event(award(3, "640104", "export_institution", "500.00", 2025).data)
    deltas.move_award(None, institution)
    # An amendment moved the beneficiary to Huinong: delta 0.00, but the award now counts there.
    moved = CountedAward.from_event(
        award(4, "640205", "export_institution", "0.00", 2025, award="500.00", kind="adjusted").data
    )
    deltas.move_award(institution, moved)
    got = {key: a for key, _, a, _ in deltas.items()}
    assert ("640181", 2025, "subsidy", "import") not in got  # nets to zero in one page
    assert ("640104", 2025, "subsidy", "export_institution") not in got
    assert ("640100", 2025, "subsidy", "export_institution") not in got
    assert got[("640205", 2025, "subsidy", "export_institution")] == 50000
    assert got[("640200", 2025, "subsidy", "export_institution")] == 50000
    assert got[("640000", 2025, "subsidy", "export_institution")] == 50000


def test_ranking_orders_by_outflow_then_inflow_with_shared_ranks_and_change() -> None:
    current = [
        RankEntry("a", 100, 0),
        RankEntry("b", 100, 5),
        RankEntry("c", 0, 7),
        RankEntry("d", 0, 0),
        RankEntry("e", 0, 0),
    ]
    assert rank(current) == {"b": 1, "a": 2, "c": 3, "d": 4, "e": 4}
    previous = [
        RankEntry("a", 5, 0),
        RankEntry("b", 0, 0),
        RankEntry("c", 9, 0),
        RankEntry("d", 0, 0),
        RankEntry("e", 0, 1),
    ]
    result = {r.region: (r.rank, r.previous_rank, r.change) for r in ranking(current, previous)}
    assert result == {"b": (1, 4, 3), "a": (2, 2, 0), "c": (3, 1, -2), "d": (4, 4, 0), "e": (4, 3, -1)}
    # no figures at all the year before: no previous rank, no change
    empty = [RankEntry(e.region, 0, 0) for e in previous]
    assert all(r.previous_rank is None and r.change is None for r in ranking(current, empty))


def test_report_calendar_in_shanghai_time() -> None:
    assert due_date(2025) == date(2026, 1, 31)
    new_year_shanghai = datetime(2025, 12, 31, 16, 30, tzinfo=UTC)  # 2026-01-01 00:30 +08:00
    assert is_provisional(2026, new_year_shanghai)
    assert not is_provisional(2025, new_year_shanghai)
    assert is_provisional(2025, datetime(2025, 12, 31, 15, 59, tzinfo=UTC))
    assert year_in_range(2026, new_year_shanghai) and not year_in_range(2027, new_year_shanghai)
    assert not year_in_range(1999, new_year_shanghai)
