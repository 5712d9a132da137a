"""The dashboard in headless Chromium (Debian's chromium package, driven by Playwright without
`playwright install`): no console errors, every chart drawn beside its table, and a new certification appears
without a reload."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from decimal import Decimal

import pytest
from playwright.async_api import async_playwright

from tcr_reporting.adapters.http.dashboard import PROGRAMME_LABELS
from tests.reporting.conftest import REPORTING_APP
from tests.reporting.fake_subsidy import FakeSubsidy, Served
from tests.reporting.registry_api import org
from tests.support.processes import start_service

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def dashboard_stack(stack_with_subsidy):
    stack = stack_with_subsidy
    reg = stack.registry_api
    reg.contract(
        org("640104"), org("640302"), "1200000.00", "1000000.00", "2024-05-01T10:00:00+08:00", signed_on="2024-04-01"
    )
    reg.contract(org("640104"), org("640181"), "2500000.00", "2000000.00", "2025-03-01T10:00:00+08:00")
    reg.contract(
        org("640302"),
        org("640402"),
        "800000.00",
        "600000.00",
        "2025-04-01T10:00:00+08:00",
        category="development",
        subcategory="commissioned",
    )
    reg.contract(
        org("640205"),
        org("640502"),
        "300000.00",
        "250000.00",
        "2025-05-01T10:00:00+08:00",
        category="consulting",
        subcategory=None,
    )
    stack.caught_up()
    # subsidies (real subsidy service): import 30% of amount to the buyers, export 5% of technology amount
    # to the sellers: 750,000 + 100,000 + 240,000 + 30,000 in 2025 (consulting earns nothing)
    with stack.client() as client:
        deadline = time.monotonic() + 30
        while client.get("/v1/regions/640000/metrics?year=2025").json()["subsidies"]["total"] != "1120000.00":
            assert time.monotonic() < deadline, "the subsidy figures did not arrive"
            time.sleep(0.1)
    return stack


async def test_dashboard_renders_and_follows_new_events(dashboard_stack, artifacts_dir, tmp_path) -> None:
    assert shutil.which(CHROMIUM) or __import__("os").path.exists(CHROMIUM), (
        "install Debian's chromium: apt-get install -y chromium"
    )
    stack = dashboard_stack
    base = stack.reporting.url
    analyst = stack.registry_api.key("analyst")
    problems: list[str] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        context = await browser.new_context(viewport={"width": 1400, "height": 1000}, locale="zh-CN")
        page = await context.new_page()
        page.on(
            "console",
            lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None,
        )
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))

        await page.goto(f"{base}/")
        assert page.url.startswith(f"{base}/login")
        await page.fill("#key", "wrong-key")
        await page.click("button[type=submit]")
        assert "failed=1" in page.url
        await page.fill("#key", analyst)
        await page.click("button[type=submit]")
        await page.wait_for_url(f"{base}/")
        assert "2025 年度总览" in await page.inner_text("h1")

        charts = ["totals", "ranking", "prefectures", "subsidies"]
        for chart in charts:
            await page.wait_for_selector(f"#chart-{chart} svg", state="attached", timeout=15000)
            assert await page.locator(f"#table-{chart} table tbody tr").count() > 0
            paths = await page.locator(f"#chart-{chart} svg path").count()
            assert paths > 3, (chart, paths)
        # the ranking chart is drawn from the same figures as its table
        spec = json.loads(await page.inner_text("#spec-ranking"))
        rows = await page.locator("#table-ranking tbody tr").all()
        assert len(rows) == 22 == len(spec["x"])
        for i, row in enumerate(rows):
            cells = await row.locator("td").all_inner_texts()
            assert Decimal(cells[5].replace(",", "")) == Decimal(spec["series"][0]["data"][i])
            assert Decimal(cells[7].replace(",", "")) == Decimal(spec["series"][1]["data"][i])
        first = await rows[0].locator("td").all_inner_texts()
        assert first[0] == "1" and "兴庆区" in first[2] and first[5] == "2,500,000.00"
        subsidies = await page.locator("#table-subsidies tbody tr").all_inner_texts()
        assert subsidies[0].split("\t")[-1].strip() == "990,000.00"  # import: 750,000 + 240,000
        assert subsidies[-1].split("\t")[-1].strip() == "1,120,000.00"
        await page.screenshot(path=str(artifacts_dir / "reporting-dashboard.png"), full_page=True)

        # a certification made now shows up without a reload
        await page.evaluate("window.__sameDocument = 'yes'")
        stack.registry_api.contract(
            org("640522"), org("640521"), "7777777.77", "4000000.00", "2025-08-01T10:00:00+08:00"
        )
        # polled from here: the page's CSP (script-src 'self') forbids Playwright's eval-based wait_for_function
        for _ in range(150):
            if "7,777,777.77" in await page.inner_text("#table-ranking"):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the new certification did not appear within 15 s")
        assert await page.evaluate("window.__sameDocument") == "yes"
        first = await page.locator("#table-ranking tbody tr").first.locator("td").all_inner_texts()
        assert "海原县" in first[2] and first[5] == "7,777,777.77"
        assert "7777777.77" in await page.inner_text("#spec-ranking")
        assert int(await page.get_attribute("#chart-ranking", "data-drawn")) >= 2  # redrawn with the new data
        headline = await page.inner_text("[data-figure=outflow-amount]")
        assert headline == "¥ 11,377,777.77"  # 2,500,000 + 800,000 + 300,000 + 7,777,777.77

        # the county page and its trend
        await page.click("#table-ranking a:has-text('海原县')")
        await page.wait_for_url(f"{base}/counties/640522?year=2025")
        for chart in ("trend", "categories"):
            await page.wait_for_selector(f"#chart-{chart} svg path", state="attached", timeout=15000)
            assert await page.locator(f"#chart-{chart} svg path").count() > 3
        trend_rows = await page.locator("#table-trend tbody tr").all_inner_texts()
        assert any(r.startswith("2025") and "7,777,777.77" in r for r in trend_rows)
        await page.screenshot(path=str(artifacts_dir / "reporting-dashboard-county.png"), full_page=True)
        await browser.close()
    assert problems == []


@pytest.fixture
def what_if_reporting(stack_with_subsidy, tmp_path):
    """A reporting process whose subsidy service is the fake what-if API (tests/reporting/fake_subsidy.py: the
    real `POST /v1/simulations` is being built elsewhere); keys are checked by the stack's real registry."""
    stack = stack_with_subsidy
    fake = FakeSubsidy()
    with Served(fake) as subsidy:
        env = {
            **stack.reporting_env,
            "TCR_SUBSIDY_URL": subsidy.url,
            "TCR_REPORTING_DATABASE_URL": f"sqlite:///{tmp_path / 'reporting-what-if.db'}",
        }
        reporting = start_service("reporting-what-if", REPORTING_APP, env, stack.log_dir)
        try:
            yield reporting, fake, stack.registry_api.key("analyst")
        finally:
            reporting.stop()


async def test_what_if_page_runs_a_candidate_and_draws_both_comparisons(what_if_reporting, artifacts_dir) -> None:
    reporting, fake, analyst = what_if_reporting
    base = reporting.url
    problems: list[str] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = await (await browser.new_context(viewport={"width": 1400, "height": 1000}, locale="zh-CN")).new_page()
        page.on(
            "console",
            lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None,
        )
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        await page.goto(f"{base}/what-if")
        await page.fill("#key", analyst)
        await page.click("button[type=submit]")
        await page.wait_for_url(f"{base}/what-if")
        assert "政策模拟" in await page.inner_text("h1")
        assert await page.input_value("input[name=rate-import]") == "0.30"
        assert await page.locator("#panel-whatif-programmes").is_hidden()

        # effective date, bases and cap scopes are editable too, starting from the rule set in force
        assert await page.input_value("input[name=effective_from]") == "2020-01-01"
        assert await page.input_value("select[name=base-import]") == "amount"
        assert await page.input_value("select[name=base-export_institution]") == "technology_amount"
        assert await page.input_value("select[name=cap_scope-export_institution]") == "project"
        assert await page.input_value("select[name=cap_scope-import]") == "policy_year"

        # refused candidates: the subsidy service's 422 names the field, shown as it came, the field marked
        await page.fill("input[name=rate-brokerage]", "1.5")
        await page.click("#whatif-run")
        await page.wait_for_selector("#whatif-errors li", timeout=15000)
        assert "rules.programmes[3].rate: rules: programmes[3].rate must not exceed 1" in await page.inner_text(
            "#whatif-errors"
        )
        assert await page.get_attribute("input[name=rate-brokerage]", "aria-invalid") == "true"
        await page.fill("input[name=rate-brokerage]", "0.02")
        await page.fill("input[name=effective_from]", "2021-02-30")
        await page.click("#whatif-run")
        # (the page's CSP allows no eval: waits use selectors, not functions)
        await page.wait_for_selector("#whatif-errors li:has-text('rules.effective_from:')", timeout=15000)
        assert (await page.locator("#whatif-errors li").all_inner_texts())[0].startswith("rules.effective_from:")
        assert await page.get_attribute("input[name=effective_from]", "aria-invalid") == "true"
        assert await page.get_attribute("input[name=rate-brokerage]", "aria-invalid") is None  # cleared on a rerun

        # from 2021; brokerage on the contract amount; import capped per project at 3,000,000.00 and paid at 20%;
        # hospitals (public institutions) earn under (五)
        await page.fill("input[name=effective_from]", "2021-01-01")
        await page.select_option("select[name=base-brokerage]", "amount")
        await page.select_option("select[name=cap_scope-import]", "project")
        await page.fill("input[name=rate-import]", "0.20")
        await page.fill("input[name=cap-import]", "3000000.00")
        await page.check("input[name=kinds-export_institution][value=public_institution]")
        await page.click("#whatif-run")
        for chart in ("whatif-programmes", "whatif-counties"):
            await page.wait_for_selector(f"#chart-{chart} svg path", state="attached", timeout=15000)
            assert await page.locator(f"#chart-{chart} svg path").count() > 3, chart
        assert await page.is_hidden("#whatif-errors")
        sent = fake.requests[-1]
        assert sent["path"] == "/v1/simulations" and sent["auth"] == f"Bearer {analyst}"
        rules = {p["programme"]: p for p in sent["body"]["rules"]["programmes"]}
        assert (rules["import"]["rate"], rules["import"]["cap"], rules["brokerage"]["rate"]) == (
            "0.20",
            "3000000.00",
            "0.02",
        )
        assert (rules["import"]["cap_scope"], rules["brokerage"]["base"]) == ("project", "amount")
        assert sent["body"]["rules"]["effective_from"] == "2021-01-01"
        assert (rules["export_institution"]["cap_scope"], rules["import"]["base"]) == ("project", "amount")
        assert rules["export_institution"]["beneficiary_kinds"] == [
            "university",
            "research_institute",
            "public_institution",
        ]
        assert sent["body"]["from_year"] == 2022 and sent["body"]["to_year"] == 2026  # this year and 4 before

        # each chart is drawn from the rows of the table under it
        for chart, label_column, first_figure in (("whatif-programmes", 0, 1), ("whatif-counties", 0, 2)):
            spec = json.loads(await page.inner_text(f"#spec-{chart}"))
            rows = await page.locator(f"#table-{chart} tbody tr").all()
            assert len(rows) == len(spec["x"]) > 0, chart
            for i, row in enumerate(rows):
                cells = await row.locator("td").all_inner_texts()
                assert spec["x"][i] in cells[label_column]
                assert Decimal(cells[first_figure].replace(",", "")) == Decimal(spec["series"][0]["data"][i])
                assert Decimal(cells[first_figure + 1].replace(",", "")) == Decimal(spec["series"][1]["data"][i])
        programmes = await page.locator("#table-whatif-programmes tbody tr").all_inner_texts()
        # import, 2024 and 2025: 900,000 + 6,750,000 in force; at 20%: 600,000 + 4,500,000
        assert any(
            r.startswith(PROGRAMME_LABELS["import"]) and "7,650,000.00\t5,100,000.00\t-2,550,000.00" in r
            for r in programmes
        ), programmes
        counties = await page.locator("#table-whatif-counties tbody tr").all_inner_texts()
        assert len(counties) == 4 and counties[0].startswith("兴庆区")  # counties only, in code order
        assert await page.locator("#table-whatif-beneficiaries tbody tr").count() == 1
        await page.screenshot(path=str(artifacts_dir / "reporting-what-if.png"), full_page=True)

        # a long history: the subsidy service answers 202 and a job; the page shows its progress while polling
        await page.fill("input[name=to_year]", "2099")
        await page.click("#whatif-run")
        await page.wait_for_selector("#whatif-status:has-text('10,700 / 21,400')", timeout=15000)
        assert await page.is_visible("#whatif-progress")
        assert await page.get_attribute("#whatif-progress", "max") == "21400"
        await page.wait_for_selector("#whatif-status:has-text('完成 Done')", timeout=15000)
        assert await page.is_hidden("#whatif-progress")
        job = fake.requests[-1]["path"]
        assert job.startswith("/v1/simulations/sim-") and fake.polls[job.rsplit("/", 1)[-1]] == 2
        await browser.close()
    # Chromium logs the refused candidates' answers (422, expected above) as failed loads; nothing else
    refused = [p for p in problems if "status of 422" in p]
    assert len(refused) == 2 and [p for p in problems if p not in refused] == []
