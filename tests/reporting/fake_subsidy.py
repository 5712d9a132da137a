"""A tiny stand-in for the subsidy service's what-if API (issue 14), at the edge of the reporting service's world:
`GET /v1/programmes` (the rule set in force, in the shape a candidate takes) and `POST /v1/simulations` answering
201 with the kept simulation as the subsidy service's branch `whatif` shapes it: `{id, created_by, from_year,
to_year, candidate, result}` where `result` holds `totals` rows (policy_year, programme, in_force, candidate,
difference, awards, capped; money as strings), `regions` rows (the same with `region`) and `beneficiaries`, and a
`Location` to get it again. It records every request it gets.

Its "simulation" is arithmetic on fixed in-force figures: a programme's candidate amount is its in-force amount
scaled by candidate rate / rate in force, and limited by the candidate cap per row; enough to check that the page
sends the numbers it shows and draws what comes back. A candidate is checked by the subsidy service's own
`candidate_book`, so a bad one gets the real 422 naming the field. `POST` with `"to_year": 2099` answers 202 and a
job to poll (`GET /v1/simulations/{id}`): `status` running with `progress` for two polls, then done."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tcr_subsidy.application.simulation import CandidateError, candidate_book
from tests.support.processes import free_port

JOB_POLLS, JOB_TOTAL = 2, 21_400  # a job answers running (with progress) to this many polls, then done

IN_FORCE = {
    "id": "ningxia-2020",
    "title": "宁夏回族自治区关于促进科技成果转移转化的若干意见 (2020)",
    "effective_from": "2020-01-01",
    "eligible_categories": ["development", "transfer", "licence"],
    "beneficiary_region_prefix": "64",
    "programmes": [
        {
            "programme": "import",
            "clause": "(四)",
            "beneficiary_role": "buyer",
            "beneficiary_kinds": ["enterprise"],
            "base": "amount",
            "rate": "0.30",
            "cap": "5000000.00",
            "cap_scope": "policy_year",
        },
        {
            "programme": "export_enterprise",
            "clause": "(四)",
            "beneficiary_role": "seller",
            "beneficiary_kinds": ["enterprise"],
            "base": "technology_amount",
            "rate": "0.05",
            "cap": "1000000.00",
            "cap_scope": "policy_year",
        },
        {
            "programme": "export_institution",
            "clause": "(五)",
            "beneficiary_role": "seller",
            "beneficiary_kinds": ["university", "research_institute"],
            "base": "technology_amount",
            "rate": "0.05",
            "cap": "1000000.00",
            "cap_scope": "project",
        },
        {
            "programme": "brokerage",
            "clause": "(八)",
            "beneficiary_role": "intermediary",
            "beneficiary_kinds": ["enterprise"],
            "base": "technology_amount",
            "rate": "0.02",
            "cap": "1000000.00",
            "cap_scope": "policy_year",
        },
    ],
    "effective_until": None,
    "in_force": True,
    "future": False,
}

# In force, per (year, programme, county): (amount, awards). Prefecture and region rows are their sums.
IN_FORCE_FIGURES = {
    (2024, "import", "640104"): ("900000.00", 2),
    (2024, "export_enterprise", "640302"): ("50000.00", 1),
    (2025, "import", "640104"): ("6000000.00", 3),
    (2025, "import", "640181"): ("750000.00", 1),
    (2025, "export_enterprise", "640302"): ("130000.00", 2),
    (2025, "export_institution", "640402"): ("40000.00", 1),
}
PREFECTURE = {"640104": "640100", "640181": "640100", "640302": "640300", "640402": "640400"}


def _money(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.01")))


def simulate(candidate: dict[str, Any], from_year: int, to_year: int) -> dict[str, Any]:
    rules = {p["programme"]: p for p in IN_FORCE["programmes"]}
    changed = {p["programme"]: p for p in candidate["programmes"]}
    regions: dict[tuple[int, str, str], list] = {}
    for (year, programme, county), (amount, awards) in IN_FORCE_FIGURES.items():
        if not from_year <= year <= to_year:
            continue
        now = Decimal(amount)
        scaled = now * Decimal(changed[programme]["rate"]) / Decimal(rules[programme]["rate"])
        cap = Decimal(changed[programme]["cap"])
        then = min(scaled, cap * awards)
        capped = awards if then < scaled else 0
        for region in (county, PREFECTURE[county], "640000"):
            row = regions.setdefault((year, programme, region), [Decimal(0), Decimal(0), 0, 0])
            row[0] += now
            row[1] += then
            row[2] += awards
            row[3] += capped

    def row(now: Decimal, then: Decimal, awards: int, capped: int) -> dict[str, Any]:
        return {
            "in_force": _money(now),
            "candidate": _money(then),
            "difference": _money(then - now),
            "awards": awards,
            "beneficiaries": awards,
            "capped": capped,
        }

    totals = [
        {"policy_year": y, "programme": p, **row(*v)} for (y, p, r), v in sorted(regions.items()) if r == "640000"
    ]
    region_rows = [
        {"policy_year": y, "programme": p, "region": r, **row(*v)}
        for (y, p, r), v in sorted(regions.items())
        if r != "640000"
    ]
    beneficiaries = [
        {
            "beneficiary": "91640104MA0000001X",
            "name": "银川某企业",
            "region": "640104",
            "in_force": "6900000.00",
            "candidate": "4600000.00",
            "difference": "-2300000.00",
        }
    ]
    return {
        "summary": {},
        "totals": totals,
        "regions": region_rows,
        "beneficiaries": beneficiaries,
    }


@dataclass
class FakeSubsidy:
    requests: list[dict[str, Any]] = field(default_factory=list)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    polls: dict[str, int] = field(default_factory=dict)  # jobs still running: how often they were polled

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/v1/programmes")
        async def programmes(request: Request) -> JSONResponse:
            self._record(request, None)
            return JSONResponse({"in_force": IN_FORCE["id"], "rule_sets": [IN_FORCE]})

        @app.post("/v1/simulations")
        async def simulations(request: Request) -> JSONResponse:
            body = await request.json()
            self._record(request, body)
            try:  # the subsidy service's own check of a candidate: the same 422s, naming the same fields
                candidate_book(body["rules"])
            except CandidateError as exc:
                return JSONResponse(
                    {
                        "type": "about:blank",
                        "title": "Invalid request",
                        "status": 422,
                        "detail": f"The candidate rules cannot be used: {exc}",
                        "errors": exc.errors,
                    },
                    status_code=422,
                    media_type="application/problem+json",
                )
            simulation = {
                "id": f"sim-{len(self.requests)}",
                "status": "done",
                "created_by": "analyst:k",
                "from_year": body["from_year"],
                "to_year": body["to_year"],
                "candidate": body["rules"],
                "result": simulate(body["rules"], body["from_year"], min(body["to_year"], 2025)),
            }
            self.jobs[simulation["id"]] = simulation
            location = {"Location": f"/v1/simulations/{simulation['id']}"}
            if body["to_year"] == 2099:  # the long-history path: a job to poll, running for JOB_POLLS polls
                self.polls[simulation["id"]] = 0
                return JSONResponse(self._running(simulation), status_code=202, headers=location)
            return JSONResponse(simulation, status_code=201, headers=location)

        @app.get("/v1/simulations/{simulation_id}")
        async def simulation(request: Request, simulation_id: str) -> JSONResponse:
            self._record(request, None)
            simulation = self.jobs[simulation_id]
            if simulation_id in self.polls and self.polls[simulation_id] < JOB_POLLS:
                self.polls[simulation_id] += 1
                return JSONResponse(self._running(simulation))
            return JSONResponse(simulation)

        return app

    def _running(self, simulation: dict[str, Any]) -> dict[str, Any]:
        """A job as the subsidy service shows it while it runs (no result yet)."""
        done = JOB_TOTAL * self.polls[simulation["id"]] // JOB_POLLS
        progress = {"stage": "deciding under the candidate", "done": done, "total": JOB_TOTAL}
        return {**{k: v for k, v in simulation.items() if k != "result"}, "status": "running", "progress": progress}

    def _record(self, request: Request, body: Any) -> None:
        self.requests.append(
            {
                "method": request.method,
                "path": request.url.path,
                "auth": request.headers.get("authorization"),
                "body": body,
            }
        )


class Served:
    """`FakeSubsidy` (or any small app standing in for a publisher) under uvicorn in a thread of the test process
    (the reporting process calls it over HTTP)."""

    def __init__(self, fake: FakeSubsidy | FastAPI) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = uvicorn.Server(
            uvicorn.Config(
                fake.app() if isinstance(fake, FakeSubsidy) else fake,
                host="127.0.0.1",
                port=self.port,
                log_level="warning",
            )
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> Served:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            assert time.monotonic() < deadline, "the fake subsidy service did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
