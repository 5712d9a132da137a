"""Policy what-if over HTTP: POST /v1/simulations runs one (analyst or admin) and keeps it; GET
/v1/simulations/{id} returns it again as JSON, CSV or XLSX (Accept header, or ?format=)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import httpx
import yaml
from fastapi import APIRouter, Body, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from tcr_shared.feeds.client import FeedUnavailable
from tcr_shared.platform.auth import Principal
from tcr_shared.platform.problems import Problem, field_error
from tcr_subsidy.adapters.simulation_exports import simulation_csv, simulation_xlsx
from tcr_subsidy.application.simulation import CandidateError, Simulations

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MIN_YEAR, MAX_YEAR = 2000, 2100


class SimulationRequest(BaseModel):
    rules: dict[str, Any] | list[Any] | str = Field(
        description="The candidate: one rule set in the shape GET /v1/programmes gives (or a rule file's), a list of "
        "rule sets, or the same as a YAML string. It is the whole rule book the history is decided with."
    )
    from_year: int = Field(ge=MIN_YEAR, le=MAX_YEAR, description="First policy year to compare")
    to_year: int = Field(ge=MIN_YEAR, le=MAX_YEAR, description="Last policy year to compare")


def parse_rules(rules: Any) -> Any:
    """A YAML string becomes the structure it writes; anything else is taken as it came."""
    if not isinstance(rules, str):
        return rules
    try:
        return yaml.safe_load(rules)
    except yaml.YAMLError as exc:
        problem = f"not valid YAML: {exc}".splitlines()[0]
        raise Problem(422, f"rules: {problem}", errors=[field_error("rules", problem)]) from exc


def simulations_router(simulations: Simulations, require: Callable[..., Any]) -> APIRouter:
    router = APIRouter(tags=["simulations"])
    analyst = require("analyst")

    @router.post(
        "/v1/simulations",
        status_code=201,
        summary="Decide the registry's history again under a candidate rule book and compare with the rules in force",
        description="201 with the comparison; on a long history (TCR_SUBSIDY_SIMULATION_JOB_AFTER registry events "
        "or more) 202 and a job to poll at the Location (`status` running, then done with `result` or failed "
        "with `error`; `progress` while running).",
        responses={202: {"description": "A job: poll GET /v1/simulations/{id}"}},
    )
    async def run(body: SimulationRequest = Body(...), principal: Principal = Depends(analyst)) -> JSONResponse:
        if body.from_year > body.to_year:
            raise Problem(
                422, "from_year must not be after to_year", errors=[field_error("from_year", "after to_year")]
            )
        try:
            simulation = await simulations.submit(
                parse_rules(body.rules),
                body.from_year,
                body.to_year,
                created_by=f"{principal.role}:{principal.key_id}",
            )
        except CandidateError as exc:
            raise Problem(422, f"The candidate rules cannot be used: {exc}", errors=exc.errors) from exc
        except (FeedUnavailable, httpx.HTTPError) as exc:
            raise Problem(
                503,
                f"The registry's feed, which the simulation replays, cannot be read now: {exc}",
                headers={"Retry-After": "5"},
            ) from exc
        # A long history is a job: 202 and the place to poll (status running -> done | failed, with progress).
        status = 202 if simulation["status"] == "running" else 201
        return JSONResponse(simulation, status_code=status, headers={"Location": f"/v1/simulations/{simulation['id']}"})

    @router.get(
        "/v1/simulations/{simulation_id}",
        summary="A kept simulation (or a job: status running with progress, done, failed); Accept: text/csv or XLSX "
        "(or ?format=csv|xlsx) downloads a finished one",
        responses={200: {"content": {"application/json": {}, "text/csv": {}, XLSX: {}}}},
    )
    async def get(
        simulation_id: str,
        request: Request,
        format: Literal["json", "csv", "xlsx"] | None = Query(None, description="Overrides the Accept header"),
        _principal: Principal = Depends(analyst),
    ) -> Response:
        simulation = await simulations.get(simulation_id)
        if simulation is None:
            raise Problem(404, f"No simulation {simulation_id} is kept here.")
        accept = request.headers.get("accept", "")
        wanted = format or ("xlsx" if XLSX in accept else "csv" if "text/csv" in accept else "json")
        if wanted != "json" and simulation["status"] != "done":
            raise Problem(
                409,
                f"Simulation {simulation_id} is {simulation['status']}: only a finished one downloads as {wanted}.",
            )
        name = f"simulation-{simulation_id}"
        if wanted == "csv":
            return Response(
                simulation_csv(simulation),
                media_type="text/csv; charset=utf-8",
                headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
            )
        if wanted == "xlsx":
            return Response(
                simulation_xlsx(simulation),
                media_type=XLSX,
                headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"'},
            )
        return JSONResponse(simulation)

    return router
