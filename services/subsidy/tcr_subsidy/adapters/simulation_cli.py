"""`tcr-subsidy simulate candidate.yaml --years 2021-2025 [--xlsx out.xlsx]`: the what-if from a terminal, with a
progress bar while the history is read and decided, and the comparison as rich tables."""

from __future__ import annotations

import asyncio
import getpass
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tcr_shared.feeds.client import FeedClient
from tcr_subsidy.adapters.persistence.migrate import upgrade
from tcr_subsidy.adapters.persistence.queries import Queries
from tcr_subsidy.adapters.persistence.simulations import SqlSimulationStore
from tcr_subsidy.adapters.rule_files import load_rule_book
from tcr_subsidy.adapters.simulation_exports import region_name, simulation_xlsx
from tcr_subsidy.application.projection import REGISTRY_FEED
from tcr_subsidy.application.simulation import CandidateError, Simulations
from tcr_subsidy.settings import SubsidySettings


def parse_years(text: str) -> tuple[int, int]:
    first, _, last = text.partition("-")
    try:
        years = int(first), int(last or first)
    except ValueError as exc:
        raise typer.BadParameter("expected YEAR or FROM-TO, e.g. 2021-2025", param_hint="--years") from exc
    if years[0] > years[1]:
        raise typer.BadParameter("the first year is after the last", param_hint="--years")
    return years


def run(
    settings: SubsidySettings, candidate: Path, years: str, xlsx: Path | None, keep: bool, console: Console
) -> None:
    from_year, to_year = parse_years(years)
    try:
        rules = yaml.safe_load(candidate.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        console.print(f"[red]{candidate} is not valid YAML or JSON:[/red] {exc}")
        raise typer.Exit(2) from exc
    try:
        simulation = asyncio.run(_simulate(settings, rules, from_year, to_year, keep, console))
    except CandidateError as exc:
        for error in exc.errors:
            console.print(f"[red]{error['field']}[/red]: {error['message']}")
        raise typer.Exit(2) from exc
    print_simulation(simulation, Console())
    if xlsx is not None:
        xlsx.write_bytes(simulation_xlsx(simulation))
        console.print(f"wrote {xlsx}")


async def _simulate(
    settings: SubsidySettings, rules: Any, from_year: int, to_year: int, keep: bool, console: Console
) -> dict[str, Any]:
    database = settings.database
    await asyncio.to_thread(upgrade, database)
    db = database.async_engine()
    feed = FeedClient(settings.registry_url, settings.registry_feed_key, page_size=1000)
    try:
        # The history the live projection has applied, when there is one; else the registry's whole feed.
        live = await Queries(db).tracked_position(REGISTRY_FEED)
        simulations = Simulations(
            load_rule_book(*settings.rules_dirs),
            feed,
            SqlSimulationStore(db) if keep else None,
            (lambda: live) if live else None,
        )
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            tasks: dict[str, Any] = {}

            def report(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = progress.add_task(stage, total=total)
                progress.update(tasks[stage], completed=done, total=total)

            return await simulations.run(
                rules, from_year, to_year, created_by=f"cli:{getpass.getuser()}", progress=report
            )
    finally:
        await feed.aclose()
        await db.dispose()


def _money(text: str, *, change: bool = False) -> str:
    value = Decimal(text)
    shown = f"{value:+,.2f}" if change and value else f"{value:,.2f}"
    return f"[red]{shown}[/red]" if value < 0 else f"[green]{shown}[/green]" if change and value > 0 else shown


def print_simulation(simulation: dict[str, Any], out: Console) -> None:
    result = simulation["result"]
    title = (
        f"Policy what-if {simulation['from_year']}-{simulation['to_year']}: "
        f"{', '.join(result['rule_sets_candidate'])} vs {', '.join(result['rule_sets_in_force'])} "
        f"({result['contracts']:,} contracts to registry position {result['registry_position']:,})"
    )
    totals = Table(title=title, title_justify="left")
    for name in ("year", "programme", "in force", "candidate", "difference", "awards", "beneficiaries", "capped"):
        totals.add_column(name, justify="left" if name == "programme" else "right")
    for row in result["totals"]:
        totals.add_row(
            str(row["policy_year"]),
            row["programme"],
            _money(row["in_force"]),
            _money(row["candidate"]),
            _money(row["difference"], change=True),
            f"{row['awards']:,} ({row['in_force_awards']:,})",
            f"{row['beneficiaries']:,} ({row['in_force_beneficiaries']:,})",
            f"{row['capped']:,} ({row['in_force_capped']:,})",
        )
    summary = result["summary"]
    totals.add_row(
        "all",
        "",
        _money(summary["in_force"]),
        _money(summary["candidate"]),
        _money(summary["difference"], change=True),
        f"{summary['awards']:,} ({summary['in_force_awards']:,})",
        "",
        f"{summary['capped']:,} ({summary['in_force_capped']:,})",
        style="bold",
    )
    totals.caption = "counts: candidate (in force)"
    out.print(totals)
    out.print(_regions(result["regions"]))
    people = Table(title="The beneficiaries whose awards change most", title_justify="left")
    for name in ("beneficiary", "name", "region", "in force", "candidate", "difference"):
        people.add_column(name, justify="right" if name in ("in force", "candidate", "difference") else "left")
    for row in result["beneficiaries"]:
        people.add_row(
            row["beneficiary"],
            row["name"] or "",
            row["region"],
            _money(row["in_force"]),
            _money(row["candidate"]),
            _money(row["difference"], change=True),
        )
    out.print(people)
    out.print(f"simulation {simulation['id']} by {simulation['created_by']} at {simulation['created_at']}")


def _regions(rows: list[dict[str, Any]]) -> Table:
    """Per prefecture and county, all years and programmes asked (the XLSX has every year and programme)."""
    sums: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for row in rows:
        sums[row["region"]][0] += Decimal(row["in_force"])
        sums[row["region"]][1] += Decimal(row["candidate"])
    table = Table(title="By prefecture and county", title_justify="left")
    for name in ("region", "name", "in force", "candidate", "difference"):
        table.add_column(name, justify="right" if name in ("in force", "candidate", "difference") else "left")
    for code in sorted(sums):
        before, after = sums[code]
        prefecture = code.endswith("00")
        table.add_row(
            code,
            region_name(code),
            _money(str(before)),
            _money(str(after)),
            _money(str(after - before), change=True),
            style="bold" if prefecture else None,
        )
    return table
