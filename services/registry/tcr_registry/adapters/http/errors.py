"""How domain and application refusals answer over HTTP."""

from __future__ import annotations

from fastapi import FastAPI, Request

from tcr_registry.application.errors import Conflict, ContractNotFound, StaleVersion
from tcr_registry.domain.errors import InvalidTerms, NotAllowedInState, OutsideJurisdiction
from tcr_shared.platform.problems import Problem, problem_response


def install_domain_errors(app: FastAPI) -> None:
    @app.exception_handler(InvalidTerms)
    async def _invalid(request: Request, exc: InvalidTerms):
        errors = [{"field": f, "message": m} for f, m in exc.errors]
        return problem_response(
            Problem(422, f"The contract breaks {len(errors)} rule(s): {exc}", errors=errors), request
        )

    @app.exception_handler(NotAllowedInState)
    async def _state(request: Request, exc: NotAllowedInState):
        return problem_response(Problem(409, f"Not allowed: {exc}."), request)

    @app.exception_handler(OutsideJurisdiction)
    async def _jurisdiction(request: Request, exc: OutsideJurisdiction):
        return problem_response(Problem(403, f"Outside your jurisdiction: {exc}."), request)

    @app.exception_handler(ContractNotFound)
    async def _missing(request: Request, exc: ContractNotFound):
        return problem_response(Problem(404, f"There is no contract {exc}."), request)

    @app.exception_handler(StaleVersion)
    async def _stale(request: Request, exc: StaleVersion):
        return problem_response(Problem(412, f"Stale If-Match: {exc}.", current_version=exc.actual), request)

    @app.exception_handler(Conflict)
    async def _conflict(request: Request, exc: Conflict):
        return problem_response(Problem(409, f"{exc}; retry the request.", title="Concurrent change"), request)
