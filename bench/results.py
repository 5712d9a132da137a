"""The one shape of a benchmark figure: printed as a row (value, baseline from the same run, ratio, goal) and
kept in bench-results/<bench>.json with the machine and the load average, so the README table
(bench/readme_table.py) and later runs compare like with like."""

from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "bench-results"


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    goal: str
    met: bool
    baseline: float | None = None
    baseline_name: str | None = None
    ratio: float | None = None
    notes: dict = field(default_factory=dict)


def figure(
    name: str,
    value: float,
    unit: str,
    *,
    at_least: float | None = None,
    at_most: float | None = None,
    baseline: float | None = None,
    baseline_name: str | None = None,
    min_ratio: float | None = None,
    **notes,
) -> Figure:
    """A figure and whether it met its goal: an absolute bound, and a ratio to a baseline of the same run."""
    ratio = value / baseline if baseline else None
    goals, met = [], True
    if at_least is not None:
        goals.append(f">= {at_least:,g} {unit}")
        met = met and value >= at_least
    if at_most is not None:
        goals.append(f"<= {at_most:,g} {unit}")
        met = met and value <= at_most
    if min_ratio is not None:
        goals.append(f">= {min_ratio:g}x {baseline_name or 'baseline'}")
        met = met and ratio is not None and ratio >= min_ratio
    return Figure(name, value, unit, " and ".join(goals) or "measured", met, baseline, baseline_name, ratio, notes)


def machine() -> dict:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu_model": model, "python": sys.version.split()[0]}


class Run:
    """The figures of one benchmark script; `load` samples the 1-minute load average (before, after)."""

    def __init__(self, bench: str) -> None:
        self.bench = bench
        self.figures: list[Figure] = []
        self.load_average = {"before": os.getloadavg()[0]}

    def add(self, fig: Figure) -> Figure:
        self.figures.append(fig)
        return fig

    def print_rows(self) -> None:
        print(f"\n{'figure':<58}{'value':>14}{'baseline':>14}{'ratio':>8}  goal")
        for f in self.figures:
            baseline = f"{f.baseline:,.0f}" if f.baseline is not None else "-"
            ratio = f"{f.ratio:.2f}x" if f.ratio is not None else "-"
            mark = "met" if f.met else "NOT met"
            print(f"{f.name:<58}{f.value:>14,.0f}{baseline:>14}{ratio:>8}  {f.goal} ({f.unit}): {mark}")
        print(f"load average (1 min): {self.load_average['before']:.2f} before, {self.load_average['after']:.2f} after")

    def write(self) -> Path:
        self.load_average["after"] = os.getloadavg()[0]
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / f"{self.bench}.json"
        document = {
            "bench": self.bench,
            "machine": machine(),
            "load_average": self.load_average,
            "figures": [asdict(f) for f in self.figures],
        }
        path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        self.print_rows()
        return path
