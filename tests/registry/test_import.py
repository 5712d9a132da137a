"""Batch-list import (issue 13) through the real registry on SQLite and PostgreSQL: POST /v1/imports with CSV and
XLSX files, the job's counts, the rejected rows as CSV and XLSX, the template, re-imports that register nothing
twice, and rows that leave nothing half-done."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from openpyxl import Workbook, load_workbook

from tcr_registry.application.imports import _NAMESPACE, COLUMNS
from tests.support.asserts import assert_problem
from tests.support.registry import ADMIN, party

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CHINESE = {c.name: c.chinese for c in COLUMNS}


def row(ref: str | None, **overrides: str) -> dict[str, str]:
    """A valid row (column name -> text) with fresh parties of region 640104 (seller) and 640181 (buyer)."""
    seller, buyer = party("university", "640104"), party("enterprise", "640181")
    values = {
        "external_ref": ref or "",
        "title": f"技术许可合同 {ref}",
        "category": "licence",
        "subcategory": "patent_ordinary",
        "signed_on": "2025-03-01",
        "amount": "900000.00",
        "technology_amount": "800000.00",
        "seller_name": seller["name"],
        "seller_kind": "university",
        "seller_credit_code": seller["credit_code"],
        "seller_region": "640104",
        "buyer_name": buyer["name"],
        "buyer_kind": "enterprise",
        "buyer_credit_code": buyer["credit_code"],
        "buyer_region": "640181",
    }
    values.update(overrides)
    return values


def csv_file(rows: list[dict[str, str]], chinese: bool = False) -> bytes:
    names = [c.name for c in COLUMNS]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([CHINESE[n] for n in names] if chinese else names)
    for values in rows:
        writer.writerow([values.get(n, "") for n in names])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def contract_id(point_id: str, ref: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{point_id}\x1fref\x1f{ref}"))


async def upload(registry, headers, content: bytes, name: str = "batch.csv", **form: str) -> httpx.Response:
    return await registry.client.post("/v1/imports", files={"file": (name, content)}, data=form, headers=headers)


async def imported(registry, headers, content: bytes, name: str = "batch.csv", **form: str) -> dict:
    """Upload, wait for the job to end, and answer GET /v1/imports/{id}."""
    r = await upload(registry, headers, content, name, **form)
    assert r.status_code == 202, r.text
    started = r.json()
    assert r.headers["Location"] == f"/v1/imports/{started['id']}"
    assert started["status"] == "running" and started["rows"] >= 0
    assert datetime.fromisoformat(started["created_at"]).utcoffset() == timedelta(0)
    await registry.runtime.imports.idle()
    r = await registry.client.get(f"/v1/imports/{started['id']}", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


async def rejected_rows(registry, headers, job_id: str) -> list[tuple[int, str]]:
    r = await registry.client.get(f"/v1/imports/{job_id}/errors", headers=headers)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv"), r.text
    assert r.content.startswith("\ufeff".encode())
    lines = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert lines[0] == ["row", "field", "message"]
    return [(int(line[0]), line[1]) for line in lines[1:]]


async def test_good_rows_are_registered_and_certified_and_bad_rows_reported(registry):
    point = await registry.point("6401")
    now = datetime.now(UTC)
    rows = [
        row("A-1", certify="是", certified_at="2025-03-10T10:00:00+08:00"),  # row 2
        row("A-2", certify="否"),  # row 3
        row("A-3", amount="900000"),  # row 4: money without its two decimals
        row("A-4", category="machines", seller_credit_code="91640104XXXXXXXXXX"),  # row 5: two rules broken
        row("A-5", seller_region="640205", buyer_region="640205"),  # row 6: outside 6401
        row("A-6", certify="yes", certified_at=(now + timedelta(days=2)).isoformat()),  # row 7: certified in future
        row("A-7", technology_amount="950000.00"),  # row 8: more than the amount
        row("A-8", certify="yes", certified_at="2025-03-11 09:30"),  # row 9: Beijing time without offset
    ]
    head = await registry.head()
    job = await imported(registry, point.headers, csv_file(rows, chinese=True))

    assert job["status"] == "done" and job["progress"] == 1.0
    assert (job["rows"], job["registered"], job["certified"], job["rejected"]) == (8, 3, 2, 5)
    assert await rejected_rows(registry, point.headers, job["id"]) == [
        (4, "amount"),
        (5, "category"),
        (5, "seller_credit_code"),
        (6, "seller_region"),
        (7, "certified_at"),
        (8, "technology_amount"),
    ]
    events = await registry.feed(head)
    assert sorted(e["type"].split(".")[3] for e in events) == ["certified", "certified"] + ["submitted"] * 3
    first = (await registry.client.get(f"/v1/contracts/{contract_id(point.id, 'A-1')}", headers=point.headers)).json()
    assert first["status"] == "certified" and first["certified_at"] == "2025-03-10T10:00:00+08:00"
    assert first["registration_number"].startswith("2025640101")
    ninth = (await registry.client.get(f"/v1/contracts/{contract_id(point.id, 'A-8')}", headers=point.headers)).json()
    assert datetime.fromisoformat(ninth["certified_at"]) == datetime(2025, 3, 11, 1, 30, tzinfo=UTC)
    # Numbers stay gap-free: the refused certification of row 7 (between the two) consumed none.
    assert (first["registration_number"][-6:], ninth["registration_number"][-6:]) == ("000001", "000002")
    second = (await registry.client.get(f"/v1/contracts/{contract_id(point.id, 'A-2')}", headers=point.headers)).json()
    assert second["status"] == "submitted"
    # The row whose certification was refused left no submitted contract behind: nothing half-done.
    r = await registry.client.get(f"/v1/contracts/{contract_id(point.id, 'A-6')}", headers=point.headers)
    assert r.status_code == 404


async def test_importing_the_same_file_again_registers_nothing_twice(registry):
    point = await registry.point("6401")
    rows = [row("B-1", certify="yes"), row("B-2"), row(None), row("B-4", amount="1.5")]
    content = csv_file(rows)
    first = await imported(registry, point.headers, content)
    assert (first["registered"], first["certified"], first["rejected"]) == (3, 1, 1)
    head = await registry.head()

    again = await imported(registry, point.headers, content)
    assert again["id"] != first["id"] and again["status"] == "done"
    assert (again["registered"], again["already_registered"], again["rejected"]) == (0, 3, 1)
    assert await registry.head() == head  # not one event more
    # The same rows twice in one file: the second is the first's contract.
    twice = await imported(registry, point.headers, csv_file([row("B-5"), *[row(None, title="同一合同")] * 2]))
    assert (twice["registered"], twice["already_registered"]) == (2, 1)


async def test_xlsx_with_numbers_and_dates_and_errors_as_xlsx(registry):
    point = await registry.point("6401")
    names = [c.name for c in COLUMNS]
    book = Workbook()
    sheet = book.active
    sheet.append(names)
    good = row("X-1", certify="yes")
    cells = {**good, "amount": 900000, "technology_amount": 800000.5, "signed_on": datetime(2025, 3, 1)}
    sheet.append([cells.get(n) or None for n in names])
    bad = {**row("X-2"), "amount": 1000.005}  # more than two decimals: not money
    sheet.append([bad.get(n) or None for n in names])
    sheet.append([None] * len(names))  # an empty row is no row
    buffer = io.BytesIO()
    book.save(buffer)

    job = await imported(registry, point.headers, buffer.getvalue(), name="batch.xlsx")
    assert (job["rows"], job["registered"], job["certified"], job["rejected"]) == (2, 1, 1, 1)
    contract = (
        await registry.client.get(f"/v1/contracts/{contract_id(point.id, 'X-1')}", headers=point.headers)
    ).json()
    assert (contract["amount"], contract["technology_amount"], contract["signed_on"]) == (
        "900000.00",
        "800000.50",
        "2025-03-01",
    )
    r = await registry.client.get(f"/v1/imports/{job['id']}/errors", headers={**point.headers, "Accept": XLSX})
    assert r.status_code == 200 and r.headers["content-type"] == XLSX
    lines = list(load_workbook(io.BytesIO(r.content)).active.iter_rows(values_only=True))
    assert lines[0] == ("row", "field", "message") and [line[:2] for line in lines[1:]] == [(3, "amount")]


async def test_the_template_names_every_column_in_both_languages_and_imports_as_it_is(registry):
    point = await registry.point("6401")
    r = await registry.client.get("/v1/imports/template.xlsx", headers=point.headers)
    assert r.status_code == 200 and r.headers["content-type"] == XLSX
    book = load_workbook(io.BytesIO(r.content))
    header = [cell.value for cell in book.worksheets[0][1]]
    assert header == [f"{c.chinese} ({c.name})" for c in COLUMNS]
    guide = list(book.worksheets[1].iter_rows(values_only=True))
    assert [(line[0], line[1]) for line in guide[1:]] == [(c.name, c.chinese) for c in COLUMNS]

    job = await imported(registry, point.headers, r.content, name="template.xlsx")  # its example row is valid
    assert (job["rows"], job["registered"], job["certified"], job["rejected"]) == (1, 1, 1, 0)


async def test_who_may_import_for_which_point(registry):
    point, other = await registry.point("6401"), await registry.point("6401")
    content = csv_file([row("C-1")])
    assert_problem(await upload(registry, ADMIN, content), 422, "point_id")
    assert_problem(await upload(registry, ADMIN, content, point_id="no-such-point"), 422, "point_id")
    assert_problem(await upload(registry, point.headers, content, point_id=other.id), 403)
    analyst = {"Authorization": f"Bearer {await registry.new_key('analyst')}"}
    assert (await upload(registry, analyst, content)).status_code == 403

    job = await imported(registry, ADMIN, content, point_id=other.id)
    assert job["point_id"] == other.id and job["registered"] == 1
    assert (await registry.client.get(f"/v1/imports/{job['id']}", headers=other.headers)).status_code == 200
    assert_problem(await registry.client.get(f"/v1/imports/{job['id']}", headers=point.headers), 404)
    assert_problem(await registry.client.get(f"/v1/imports/{job['id']}/errors", headers=point.headers), 404)


async def test_a_file_that_is_not_a_batch_list_is_refused_whole(registry):
    point = await registry.point("6401")
    header_with_typo = b"external_ref,title,categroy\nX,Y,Z\n"
    body = assert_problem(await upload(registry, point.headers, header_with_typo), 422, "header.3")
    fields = [e["field"] for e in body["errors"]]
    assert {"category", "signed_on", "amount", "seller_name", "buyer_kind"} <= set(fields)
    assert_problem(await upload(registry, point.headers, b""), 422, "file")
    assert_problem(await upload(registry, point.headers, b"PK\x03\x04 not really a zip", name="x.xlsx"), 422, "file")
    assert_problem(await upload(registry, point.headers, "合同名称\n".encode("gb18030")), 422)
