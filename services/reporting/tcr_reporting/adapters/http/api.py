"""The reporting API under /v1 (analyst or admin key)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from tcr_reporting.adapters.http.exports import report_csv, report_xlsx
from tcr_reporting.adapters.http.negotiation import CSV, JSON, XLSX, negotiate
from tcr_reporting.domain.calendar import MIN_YEAR, current_year, year_in_range
from tcr_shared.language.regions import ningxia_regions
from tcr_shared.platform.problems import Problem, field_error

READER_ROLES = ("analyst", "admin")  # the API and the dashboard alike


def _runtime(request: Request):
    return request.app.state.runtime


def check_year(year: int, runtime, field: str = "year") -> int:
    now = runtime.clock()
    if not year_in_range(year, now):
        raise Problem(
            422,
            f"year {year} is out of range: figures exist for {MIN_YEAR} to {current_year(now)} "
            f"(policy years in Asia/Shanghai).",
            errors=[field_error(field, f"must be between {MIN_YEAR} and {current_year(now)}")],
        )
    return year


def check_region(code: str) -> str:
    if code not in ningxia_regions():
        raise Problem(
            404, f"'{code}' is not a Ningxia county, prefecture or region code (GB/T 2260); see GET /v1/regions."
        )
    return code


async def json_only(request: Request) -> None:
    negotiate(request.headers.get("accept"), [JSON])


def api_router(require) -> APIRouter:
    reader = require(*READER_ROLES)
    router = APIRouter(prefix="/v1", dependencies=[Depends(reader)])

    @router.get(
        "/regions",
        tags=["regions"],
        summary="Ningxia's counties, prefectures and the region",
        dependencies=[Depends(json_only)],
    )
    async def regions() -> dict:
        return {
            "regions": [
                {"region": r.code, "name": r.name, "level": r.level, "parent": r.parent}
                for r in ningxia_regions().values()
            ]
        }

    @router.get(
        "/regions/{code}/metrics",
        tags=["metrics"],
        dependencies=[Depends(json_only)],
        summary="Outflow, inflow and subsidies of a county, prefecture or the region in a policy year",
    )
    async def metrics(
        request: Request,
        code: str = Path(description="GB/T 2260 code, e.g. 640104, 640100, 640000"),
        year: int | None = Query(None, description="Policy year (default: this year)"),
    ) -> Response:
        runtime = _runtime(request)
        check_region(code)
        year = check_year(year if year is not None else current_year(runtime.clock()), runtime)
        return Response(await runtime.queries.metrics_json(code, year), media_type="application/json")

    @router.get(
        "/regions/{code}/trend",
        tags=["metrics"],
        dependencies=[Depends(json_only)],
        summary="A region's figures for every year that has any",
    )
    async def trend(request: Request, code: str) -> dict:
        check_region(code)
        return {
            "region": code,
            "name": ningxia_regions()[code].name,
            "years": await _runtime(request).queries.trend(code),
        }

    @router.get(
        "/rankings",
        tags=["rankings"],
        dependencies=[Depends(json_only)],
        summary="Counties or prefectures by outflow amount, then inflow amount, with change in rank",
    )
    async def rankings(
        request: Request, year: int | None = Query(None), level: Literal["county", "prefecture"] = Query("county")
    ) -> JSONResponse:
        runtime = _runtime(request)
        year = check_year(year if year is not None else current_year(runtime.clock()), runtime)
        return JSONResponse(await runtime.queries.rankings(year, level))

    @router.get(
        "/reports/annual/{year}",
        tags=["reports"],
        summary="The annual report (clause 十六) as JSON, CSV (UTF-8 with BOM) or XLSX",
        responses={200: {"content": {JSON: {}, CSV: {}, XLSX: {}}}},
    )
    async def annual_report(
        request: Request,
        year: int,
        format: Literal["json", "csv", "xlsx"] | None = Query(
            None, description="Overrides Accept (for download links)"
        ),
    ) -> Response:
        runtime = _runtime(request)
        media = (
            {"json": JSON, "csv": CSV, "xlsx": XLSX}[format]
            if format
            else negotiate(request.headers.get("accept"), [JSON, CSV, XLSX])
        )
        check_year(year, runtime)
        report = await runtime.queries.annual_report(year, positions=await runtime.positions())
        headers = {"TCR-Provisional": "true" if report["provisional"] else "false", "Vary": "Accept"}
        suffix = "-provisional" if report["provisional"] else ""
        if media == CSV:
            headers["Content-Disposition"] = f'attachment; filename="tcr-annual-report-{year}{suffix}.csv"'
            return Response(report_csv(report), media_type="text/csv; charset=utf-8", headers=headers)
        if media == XLSX:
            headers["Content-Disposition"] = f'attachment; filename="tcr-annual-report-{year}{suffix}.xlsx"'
            return Response(report_xlsx(report), media_type=XLSX, headers=headers)
        return JSONResponse(report, headers=headers)

    @router.get(
        "/status",
        tags=["status"],
        dependencies=[Depends(json_only)],
        summary="Per followed feed: position applied, publisher head, lag, errors",
    )
    async def status(request: Request) -> dict:
        runtime = _runtime(request)
        return {
            "service": "reporting",
            "role": runtime.lease.role,
            "lease": runtime.lease.as_dict(),
            "feeds": {name: feed.status() for name, feed in runtime.feeds.items()},
        }

    return router
