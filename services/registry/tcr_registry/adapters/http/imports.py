"""/v1/imports: batch lists (登记清单) uploaded as CSV or XLSX, imported in the background as a job."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, Response, StreamingResponse

from tcr_registry.adapters.imports.files import XLSX_MEDIA_TYPE, errors_csv, errors_xlsx, template_xlsx
from tcr_registry.adapters.imports.service import point_actor
from tcr_registry.application.actor import PointActor
from tcr_registry.application.imports import ImportFileError, ImportJob
from tcr_shared.platform.auth import Principal
from tcr_shared.platform.problems import Problem

MAX_UPLOAD_BYTES = 200 * 1024 * 1024  # 100,000 rows of CSV are about 40 MB
_COPY_CHUNK = 1024 * 1024


def job_view(job: ImportJob) -> dict[str, Any]:
    return {
        "id": job.id,
        "point_id": job.point_id,
        "filename": job.filename,
        "status": job.status,
        "rows": job.rows,
        "processed": job.processed,
        "registered": job.registered,
        "certified": job.certified,
        "already_registered": job.already_registered,
        "rejected": job.rejected,
        "progress": job.progress,
        "message": job.message,
        "created_at": job.created_at.isoformat() if job.created_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "errors": f"/v1/imports/{job.id}/errors",
    }


def imports_router(runtime) -> APIRouter:
    router = APIRouter(prefix="/v1/imports", tags=["imports"])
    point_or_admin = runtime.require("point")

    async def acting_point(principal: Principal, point_id: str | None) -> PointActor:
        """A point key imports for its own point; an admin names the point."""
        if not principal.is_admin:
            if point_id not in (None, principal.point_id):
                raise Problem(403, "A point key imports for its own point only.")
            return PointActor(principal.point_id, principal.jurisdiction, principal.point_number)
        if not point_id:
            raise Problem(422, "An admin names the point to import for.", errors=[_error("point_id", "is required")])
        actor = await point_actor(runtime.points_and_keys, point_id)
        if actor is None:
            raise Problem(422, f"There is no point {point_id!r}.", errors=[_error("point_id", "no such point")])
        return actor

    async def readable_job(job_id: str, principal: Principal) -> ImportJob:
        job = await runtime.imports.jobs.get(job_id)
        if job is None or not (principal.is_admin or principal.point_id == job.point_id):
            raise Problem(404, f"There is no import {job_id!r}.")
        return job

    @router.get(
        "/template.xlsx",
        summary="The batch-list template: its columns, in Chinese and English",
        responses={200: {"content": {XLSX_MEDIA_TYPE: {}}}},
    )
    async def template(_: Principal = Depends(point_or_admin)):
        return Response(
            template_xlsx(),
            media_type=XLSX_MEDIA_TYPE,
            headers={"Content-Disposition": 'attachment; filename="tcr-batch-list-template.xlsx"'},
        )

    @router.post("", status_code=202, summary="Import a batch list (CSV or XLSX) in the background")
    async def start_import(
        file: UploadFile = File(..., description="CSV (UTF-8, BOM or not) or XLSX; the first row is the header"),
        point_id: str | None = Form(None, description="The point to import for (admin keys only)"),
        principal: Principal = Depends(point_or_admin),
    ):
        actor = await acting_point(principal, point_id)
        path = await _saved(file, Path(runtime.settings.data_dir) / "imports")
        try:
            job = await runtime.imports.start(path, file.filename or "upload", actor)
        except ImportFileError as refused:
            errors = [_error(field, message) for field, message in refused.errors]
            raise Problem(422, f"The file cannot be imported: {refused}.", errors=errors) from None
        return JSONResponse(job_view(job), status_code=202, headers={"Location": f"/v1/imports/{job.id}"})

    @router.get("/{job_id}", summary="An import's progress and outcome")
    async def get_import(job_id: str, principal: Principal = Depends(point_or_admin)):
        return job_view(await readable_job(job_id, principal))

    @router.get(
        "/{job_id}/errors",
        summary="The rejected rows (row, field, message) as CSV, or XLSX by Accept",
        responses={200: {"content": {"text/csv": {}, XLSX_MEDIA_TYPE: {}}}},
    )
    async def import_errors(job_id: str, request: Request, principal: Principal = Depends(point_or_admin)):
        job = await readable_job(job_id, principal)
        name = f"import-{job.id}-rejected"
        rows = [error async for error in runtime.imports.jobs.errors(job.id)]
        if XLSX_MEDIA_TYPE in request.headers.get("accept", ""):
            return Response(
                errors_xlsx(rows),
                media_type=XLSX_MEDIA_TYPE,
                headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"'},
            )
        return StreamingResponse(
            errors_csv(rows),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )

    return router


async def _saved(upload: UploadFile, folder: Path) -> Path:
    """The upload in a file of its own (the request's copy is gone once the answer is sent)."""
    folder.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix="import-", dir=folder)
    size = 0
    with os.fdopen(handle, "wb") as out:
        while chunk := await upload.read(_COPY_CHUNK):
            size += len(chunk)
            if size > MAX_UPLOAD_BYTES:
                out.close()
                Path(name).unlink(missing_ok=True)
                raise Problem(413, f"A batch list may be at most {MAX_UPLOAD_BYTES // (1024 * 1024)} MB.")
            out.write(chunk)
    if size == 0:
        Path(name).unlink(missing_ok=True)
        raise Problem(422, "The file is empty.", errors=[_error("file", "is empty")])
    return Path(name)


def _error(field: str, message: str) -> dict[str, str]:
    return {"field": field, "message": message}
