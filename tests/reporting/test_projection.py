"""The projection on SQLite and PostgreSQL, fed hand-made feed events through the shared SqlProjectionSink."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tcr_reporting.adapters.persistence.migrate import upgrade
from tcr_reporting.adapters.persistence.projection import registry_sink, reset, subsidy_sink
from tcr_reporting.adapters.persistence.store import FigureStore
from tcr_reporting.application.queries import ReportingQueries
from tcr_shared.language.regions import counties, ningxia_regions, prefectures
from tcr_shared.platform.database import Database
from tests.reporting.builders import Feed, award, terms


@pytest.fixture
async def projection(database_url):
    database = Database(database_url)
    await asyncio.to_thread(upgrade, database)
    engine = database.async_engine()
    version = {"n": 0}

    async def current_version():
        return (version["n"],)

    queries = ReportingQueries(FigureStore(engine), current_version, lambda: datetime(2026, 3, 1, tzinfo=UTC))
    yield engine, queries, version
    await engine.dispose()


def scenario() -> Feed:
    feed = Feed()
    k4 = terms("640104", "640181", "4000000.00", "3000000.00", "licence")
    feed.certify("k4", k4, 2025)
    feed.certify("k5", terms("640302", "640302", "200.00", "150.00", "service"), 2025)
    k6 = terms("640181", "640104", "700.00", "700.00", "consulting")
    feed.certify("k6", k6, 2025)
    feed.certify("k7", terms("640402", "110108", "1234.56", "1000.01", "development"), 2025)
    feed.certify("k8", terms(None, "640104", "800.00", "600.00", "licence"), 2025)
    feed.certify("k1", terms("640104", "640302", "300.00", "200.00", "licence"), 2024)
    feed.submit("k9", terms("640104", "640104", "99.00", "99.00"))
    feed.amend("k4", k4, terms("640205", "640181", "4500000.00", "3000000.00", "transfer"), 2025)
    feed.revoke("k6", k6, 2025)
    return feed


async def apply_in_pages(engine, feed: Feed, size: int) -> None:
    sink = registry_sink(engine)
    for start in range(0, len(feed.events), size):
        page = feed.events[start : start + size]
        await sink.apply(page, page[-1].position)


async def snapshot(queries: ReportingQueries, version: dict) -> dict:
    version["n"] += 1
    return {(code, year): await queries.metrics(code, year) for code in ningxia_regions() for year in (2024, 2025)}


async def test_hand_computed_figures_and_roll_ups(projection) -> None:
    engine, queries, version = projection
    await apply_in_pages(engine, scenario(), 4)
    m = await snapshot(queries, version)
    a, b, c, d, e = (m[(code, 2025)] for code in ("640104", "640181", "640302", "640205", "640402"))
    assert a["outflow"]["count"] == 0 and a["outflow"]["amount"] == "0.00"  # amended away, k6 revoked
    assert (a["inflow"]["count"], a["inflow"]["amount"], a["inflow"]["technology_amount"]) == (1, "800.00", "600.00")
    assert a["inflow"]["by_category"]["consulting"] == {"count": 0, "amount": "0.00", "technology_amount": "0.00"}
    assert (b["inflow"]["count"], b["inflow"]["amount"]) == (1, "4500000.00")
    assert b["inflow"]["by_category"]["transfer"]["amount"] == "4500000.00"
    assert b["inflow"]["by_category"]["licence"]["count"] == 0
    assert b["outflow"]["count"] == 0
    assert (c["outflow"]["count"], c["outflow"]["amount"], c["inflow"]["count"], c["inflow"]["amount"]) == (
        1,
        "200.00",
        1,
        "200.00",
    )  # same county: both sides
    assert (d["outflow"]["amount"], d["outflow"]["technology_amount"]) == ("4500000.00", "3000000.00")
    assert (e["outflow"]["amount"], e["outflow"]["technology_amount"]) == ("1234.56", "1000.01")
    region = m[("640000", 2025)]
    assert (region["outflow"]["count"], region["outflow"]["amount"]) == (3, "4501434.56")  # k4, k5, k7
    assert (region["inflow"]["count"], region["inflow"]["amount"]) == (3, "4501000.00")
    assert m[("640104", 2024)]["outflow"]["amount"] == "300.00"
    assert m[("640302", 2024)]["inflow"]["amount"] == "300.00"
    # every prefecture is the sum of its counties, the region the sum of its prefectures, per field
    from decimal import Decimal

    for year in (2024, 2025):
        for side in ("outflow", "inflow"):
            for p in prefectures():
                members = [m[(c.code, year)][side] for c in counties() if c.parent == p.code]
                assert m[(p.code, year)][side]["count"] == sum(x["count"] for x in members)
                assert Decimal(m[(p.code, year)][side]["amount"]) == sum(Decimal(x["amount"]) for x in members)
            assert Decimal(m[("640000", year)][side]["amount"]) == sum(
                Decimal(m[(p.code, year)][side]["amount"]) for p in prefectures()
            )


async def test_page_boundaries_do_not_change_figures(projection) -> None:
    engine, queries, version = projection
    feed = scenario()
    results = []
    for size in (1, 3, 1000):
        await reset(engine)
        await apply_in_pages(engine, feed, size)
        results.append(await snapshot(queries, version))
    assert results[0] == results[1] == results[2]


async def test_a_page_is_applied_once(projection) -> None:
    engine, queries, version = projection
    feed = scenario()
    sink = registry_sink(engine)
    await sink.apply(feed.events, feed.position)
    before = await snapshot(queries, version)
    with pytest.raises(RuntimeError, match="twice"):
        await sink.apply(feed.events, feed.position)
    assert await snapshot(queries, version) == before
    assert await sink.position() == feed.position


async def test_subsidies_net_of_claw_backs_follow_each_award(projection) -> None:
    engine, queries, version = projection
    sink = subsidy_sink(engine)
    await sink.apply(
        [
            award(1, "640181", "import", "2700000.00", 2025, award_id="A1"),
            award(2, "640181", "import", "1800000.00", 2025, award_id="A2"),
            award(3, "640104", "export_institution", "40000.00", 2025, award_id="A3"),
            award(4, "640402", "brokerage", "1000.00", 2024, award_id="B1"),
        ],
        4,
    )
    await sink.apply(
        [
            award(5, "640181", "import", "-1800000.00", 2025, award="0.00", kind="clawed_back", award_id="A2"),
            award(6, "640181", "import", "500000.00", 2025, award="500000.00", award_id="A4"),
            award(7, "640402", "brokerage", "-100.00", 2024, award="900.00", kind="adjusted", award_id="B1"),
            # the seller moved to Huinong in an amendment: delta 0.00, the award moves with it
            award(8, "640205", "export_institution", "0.00", 2025, award="40000.00", kind="adjusted", award_id="A3"),
        ],
        8,
    )
    m = await snapshot(queries, version)
    assert m[("640181", 2025)]["subsidies"] == {
        "total": "3200000.00",
        "by_programme": {
            "import": "3200000.00",
            "export_enterprise": "0.00",
            "export_institution": "0.00",
            "brokerage": "0.00",
        },
    }
    assert m[("640100", 2025)]["subsidies"]["total"] == "3200000.00"
    assert m[("640104", 2025)]["subsidies"]["total"] == "0.00"
    assert m[("640205", 2025)]["subsidies"]["by_programme"]["export_institution"] == "40000.00"
    assert m[("640200", 2025)]["subsidies"]["by_programme"]["export_institution"] == "40000.00"
    assert m[("640000", 2025)]["subsidies"]["by_programme"]["export_institution"] == "40000.00"
    assert m[("640402", 2024)]["subsidies"]["by_programme"]["brokerage"] == "900.00"
    assert await sink.position() == 8
    # subsidies never leak into contract counts
    assert m[("640181", 2025)]["outflow"]["count"] == 0


async def test_cache_follows_the_projection_version(projection) -> None:
    engine, queries, version = projection
    feed = Feed()
    feed.certify("x", terms("640521", "640522", "10.00", "10.00"), 2025)
    first = await queries.metrics("640521", 2025)
    await registry_sink(engine).apply(feed.events, feed.position)
    assert await queries.metrics("640521", 2025) == first  # same version: cached answer
    version["n"] += 1
    assert (await queries.metrics("640521", 2025))["outflow"]["amount"] == "10.00"


async def test_concurrent_requests_share_one_read(projection) -> None:
    engine, _queries, _version = projection

    class CountingStore(FigureStore):
        reads = 0

        async def rows(self, regions, years):
            CountingStore.reads += 1
            await asyncio.sleep(0.05)
            return await super().rows(regions, years)

    async def version():
        return (1,)

    queries = ReportingQueries(CountingStore(engine), version, lambda: datetime(2026, 3, 1, tzinfo=UTC))
    answers = await asyncio.gather(*(queries.metrics("640104", 2025) for _ in range(32)))
    assert CountingStore.reads == 1 and all(a == answers[0] for a in answers)


async def test_a_party_at_a_prefecture_or_region_code_counts_there_only_never_in_a_county(projection) -> None:
    """Old events may carry 640100 or 640000 as a party's region (the registry refuses them now): such a party
    counts at that level and above, never as a county, never twice; the annual report shows it apart
    (`above_counties`, `above_prefectures`) so that every line adds up."""
    engine, queries, version = projection
    feed = Feed()
    feed.certify("p1", terms("640104", "640100", "100.00", "80.00"), 2025)  # buyer: the prefecture itself
    feed.certify("p2", terms("640000", "640181", "30.00", "20.00"), 2025)  # seller: the region itself
    feed.certify("p3", terms("640100", "640100", "7.00", "5.00"), 2025)  # both sides at the prefecture
    feed.certify("c1", terms("640104", "640181", "1.00", "1.00"), 2025)  # an ordinary county contract
    await registry_sink(engine).apply(feed.events, feed.position)
    await subsidy_sink(engine).apply([award(1, "640100", "import", "30.00", 2025, award_id="P1")], 1)
    m = await snapshot(queries, version)
    county_codes = [c.code for c in counties()]
    assert sum(m[(code, 2025)]["inflow"]["count"] for code in county_codes) == 2  # p2 (640181) and c1
    assert sum(m[(code, 2025)]["outflow"]["count"] for code in county_codes) == 2  # p1 (640104) and c1
    assert all(m[(code, 2025)]["subsidies"]["total"] == "0.00" for code in county_codes)
    prefecture, region = m[("640100", 2025)], m[("640000", 2025)]
    assert (prefecture["inflow"]["count"], prefecture["inflow"]["amount"]) == (4, "138.00")  # p1 p2 p3 c1
    assert (prefecture["outflow"]["count"], prefecture["outflow"]["amount"]) == (3, "108.00")  # p1 p3 c1
    assert (region["outflow"]["count"], region["outflow"]["amount"]) == (4, "138.00")  # once per contract
    assert (region["inflow"]["count"], region["inflow"]["amount"]) == (4, "138.00")
    assert prefecture["subsidies"]["total"] == region["subsidies"]["total"] == "30.00"
    ranked = (await queries.rankings(2025, "county"))["items"]
    assert {i["region"] for i in ranked} == set(county_codes)

    report = await queries.annual_report(2025)
    lines = {p["region"]: p for p in report["prefectures"]}
    assert lines["640100"]["above_counties"]["inflow_count"] == 2  # p1 and p3: the prefecture's own buyers
    assert lines["640100"]["above_counties"]["inflow_amount"] == "107.00"
    assert lines["640100"]["above_counties"]["outflow_count"] == 1  # p3
    assert lines["640100"]["above_counties"]["subsidies_import"] == "30.00"
    assert report["region"]["above_prefectures"]["outflow_count"] == 1  # p2: the region's own seller
    assert report["region"]["above_prefectures"]["outflow_amount"] == "30.00"
    assert report["region"]["above_prefectures"]["inflow_count"] == 0
    assert all(v in (0, "0.00") for v in lines["640200"]["above_counties"].values())
    for entry in report["prefectures"]:  # counties + above_counties == the prefecture, every field
        for name, value in entry["figures"].items():
            parts = [c["figures"][name] for c in entry["counties"]] + [entry["above_counties"][name]]
            assert Decimal(str(value)) == sum(Decimal(str(p)) for p in parts), (entry["region"], name)
    for name, value in report["region"]["figures"].items():
        parts = [p["figures"][name] for p in report["prefectures"]] + [report["region"]["above_prefectures"][name]]
        assert Decimal(str(value)) == sum(Decimal(str(p)) for p in parts), name
