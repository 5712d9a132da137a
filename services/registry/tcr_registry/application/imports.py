"""Batch-list import (登记清单): many contracts from one spreadsheet, each row through the same rules and the same
commands as `POST /v1/contracts`, run by the same writer (whose group commit is what makes a batch fast).

A row is one contract. It is registered (and, when it asks, certified) in one command, so either all its events
are stored or none: nothing half-done remains for a row. Its contract id is derived from the point and the row
(its `external_ref`, or else its terms), so importing the same file again registers nothing twice.

The file itself (CSV or XLSX) is read by an adapter, which hands over rows of text cells keyed by column name."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any, Protocol

from tcr_registry.application import commands
from tcr_registry.application.actor import PointActor
from tcr_registry.application.errors import AlreadySubmitted, Conflict
from tcr_registry.application.ports import CommandRunner, UnitOfWork
from tcr_registry.domain.errors import InvalidTerms, NotAllowedInState, OutsideJurisdiction
from tcr_registry.domain.terms import Terms
from tcr_shared.language.policy_time import SHANGHAI
from tcr_shared.language.vocabulary import CATEGORIES, CATEGORY_LABELS, CONSIDERATIONS, PARTY_KINDS
from tcr_shared.platform.collector import fewer_collections

# --- the column set ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    name: str
    chinese: str
    required: bool
    description: str
    example: str


_PARTY_KINDS_HELP = ", ".join(PARTY_KINDS)


def _party_columns(
    role: str, chinese: str, required: bool, example_kind: str, example_code: str, example_region: str
) -> list[Column]:
    columns = [
        Column(f"{role}_name", f"{chinese}名称", required, f"the {role}'s name", example_kind and f"{chinese}示例单位"),
        Column(f"{role}_kind", f"{chinese}类型", required, _PARTY_KINDS_HELP, example_kind),
        Column(
            f"{role}_credit_code",
            f"{chinese}统一社会信用代码",
            False,
            "18 characters with check digit (organisations)",
            example_code,
        ),
        Column(f"{role}_region", f"{chinese}行政区划代码", False, "GB/T 2260 six digits", example_region),
    ]
    if role != "intermediary":
        columns += [
            Column(f"{role}_id_number", f"{chinese}身份证号", False, "individuals only", ""),
            Column(f"{role}_country", f"{chinese}国家或地区", False, "ISO 3166-1 alpha-2, foreign parties only", ""),
        ]
    return columns


COLUMNS: tuple[Column, ...] = (
    Column(
        "external_ref", "合同编号", False, "the point's own reference; makes a re-import skip the row", "NX-2025-0001"
    ),
    Column("title", "合同名称", True, "the contract's title", "一种枸杞多糖提取技术许可合同"),
    Column("category", "合同类别", True, f"{', '.join(CATEGORIES)} (or 技术开发 ...)", "licence"),
    Column("subcategory", "合同子类", False, "as in the API, e.g. patent_ordinary; empty for none", "patent_ordinary"),
    Column("signed_on", "签订日期", True, "YYYY-MM-DD", "2025-03-01"),
    Column("amount", "成交额", True, "yuan with two decimals, e.g. 900000.00", "900000.00"),
    Column("technology_amount", "技术交易额", True, "yuan with two decimals, at most the amount", "800000.00"),
    Column("consideration", "对价方式", False, f"{' or '.join(CONSIDERATIONS)}; empty: money", "money"),
    Column("result_id", "成果编号", False, "the technology result (patent number ...)", "ZL202110123456.7"),
    *_party_columns("seller", "卖方", True, "university", "126400004550001239", "640104"),
    *_party_columns("buyer", "买方", True, "enterprise", "91640181MA7F3K2Q1Q", "640181"),
    *_party_columns("intermediary", "中介方", False, "", "", ""),
    Column("certify", "是否认定登记", False, "yes/no (是/否): certify right after registering", "yes"),
    Column(
        "certified_at",
        "认定登记时间",
        False,
        "RFC 3339, or YYYY-MM-DD[ HH:MM[:SS]] in Beijing time; empty: now",
        "2025-03-10T10:00:00+08:00",
    ),
    Column("expert_review_ref", "专家评审编号", False, "required to certify a technology amount >= 5,000,000.00", ""),
)
COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)
REQUIRED: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.required)
_PARTY_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    role: tuple((name.removeprefix(f"{role}_"), name) for name in COLUMN_NAMES if name.startswith(f"{role}_"))
    for role in ("seller", "buyer", "intermediary")
}
_TERMS_COLUMNS = ("title", "category", "subcategory", "signed_on", "amount", "technology_amount", "consideration",
                  "result_id")  # fmt: skip
_BY_HEADER: dict[str, str] = {c.name: c.name for c in COLUMNS} | {c.chinese: c.name for c in COLUMNS}
_BILINGUAL = re.compile(r"^(?P<zh>[^()（）]*)\s*[(（]\s*(?P<en>[^()（）]+)\s*[)）]$")
_YES = {"yes", "y", "true", "1", "是"}
_NO = {"no", "n", "false", "0", "否"}
_CATEGORY_BY_LABEL = {label["zh"]: code for code, label in CATEGORY_LABELS.items()}
_NAMESPACE = uuid.UUID("6d1f3c0e-8a4b-5e27-9c61-2f7b0d4e9a35")


class ImportFileError(Exception):
    """The file as a whole cannot be imported (unreadable, or its header row is wrong); `errors` names fields."""

    def __init__(self, message: str, errors: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


def column_of(header: str) -> str | None:
    """The column a header cell names: its English name, its Chinese name, or both as 合同编号 (external_ref)."""
    text = header.strip().lstrip("\ufeff").strip()
    found = _BY_HEADER.get(text) or _BY_HEADER.get(text.lower())
    if found is None and (both := _BILINGUAL.match(text)):
        found = _BY_HEADER.get(both["en"].strip().lower()) or _BY_HEADER.get(both["zh"].strip())
    return found


def header_columns(header: list[str]) -> list[str | None]:
    """Each header cell's column (None for an empty cell, whose column is ignored). An unknown or repeated header,
    or a missing required column, refuses the file: a typo must not silently drop a column."""
    columns: list[str | None] = []
    errors: list[tuple[str, str]] = []
    for position, cell in enumerate(header, start=1):
        if not cell.strip():
            columns.append(None)
            continue
        name = column_of(cell)
        if name is None:
            errors.append((f"header.{position}", f"unknown column {cell.strip()!r}"))
        elif name in columns:
            errors.append((f"header.{position}", f"column {name} appears twice"))
        columns.append(name)
    missing = [name for name in REQUIRED if name not in columns]
    errors += [(name, "this column is required in the header row") for name in missing]
    if errors:
        raise ImportFileError(f"the header row is not the import's column set: {len(errors)} problem(s)", errors)
    return columns


# --- one row ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowError:
    row: int  # counting the header row as row 1, as a spreadsheet numbers it
    field: str  # a column name, or "row"
    message: str


class RowRefused(Exception):
    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{f}: {m}" for f, m in errors))
        self.errors = errors


@dataclass(frozen=True)
class RowPlan:
    """What one row asks for, as the domain's terms."""

    row: int
    contract_id: uuid.UUID
    terms: Terms
    certify: bool
    certified_at: datetime | None
    expert_review_ref: str | None


TermsReader = Callable[[dict[str, Any]], Terms]
"""How the API reads a request body of POST /v1/contracts into terms (its schema's checks, then the same
construction); raises RowRefused naming the row's columns. The HTTP adapter provides it."""


def plan_row(point_id: str, row: int, values: Mapping[str, str], read_terms: TermsReader) -> RowPlan:
    """The row as the body of a POST /v1/contracts, read into terms as the API reads it; and what the row asks of
    its certification. Raises RowRefused naming every column that cannot be read; the rules of the terms
    themselves are the domain's, checked when the row's command runs."""
    values = {name: value.strip() for name, value in values.items() if value and value.strip()}
    errors: list[tuple[str, str]] = []
    certify = _yes_no(values.get("certify"), errors)
    certified_at = _moment(values.get("certified_at"), errors)
    if certify is False and certified_at is not None:
        errors.append(("certified_at", "only a row with certify yes (是) is certified"))
    try:
        terms = read_terms(request_body(values))
    except RowRefused as refused:
        errors[:0] = refused.errors
    if errors:
        raise RowRefused(errors)
    contract_id = row_contract_id(point_id, values.get("external_ref"), terms)
    return RowPlan(row, contract_id, terms, bool(certify), certified_at, values.get("expert_review_ref"))


Planned = RowPlan | list[tuple[str, str]]
"""A row's plan, or the (column, reason) pairs that refuse it: plain data, which crosses a process boundary."""


def plan_rows(point_id: str, rows: list[tuple[int, Mapping[str, str]]], read_terms: TermsReader) -> list[Planned]:
    """plan_row for a chunk of rows, in their order. Module-level and answering plain data (no exception), so that
    worker processes can run it (ImportRun.planner): planning is most of the CPU an import spends outside the
    writer, and a worker process has an interpreter (and a GIL) of its own."""
    planned: list[Planned] = []
    for row, values in rows:
        try:
            planned.append(plan_row(point_id, row, values, read_terms))
        except RowRefused as refused:
            planned.append(refused.errors)
    return planned


def request_body(values: dict[str, str]) -> dict[str, Any]:
    """The row as the JSON body of POST /v1/contracts (an empty cell is a field left out), with a spreadsheet's
    habits made the API's: 2025/03/01 is 2025-03-01, 技术许可 is licence, codes are upper case."""
    body: dict[str, Any] = {name: values[name] for name in _TERMS_COLUMNS if name in values}
    if "signed_on" in body:
        body["signed_on"] = body["signed_on"].replace("/", "-")
    if "category" in body:
        body["category"] = _CATEGORY_BY_LABEL.get(body["category"], body["category"])
    for role, columns in _PARTY_FIELDS.items():
        party = {field: values[column] for field, column in columns if column in values}
        for code in ("credit_code", "country", "id_number"):
            if code in party:
                party[code] = party[code].upper()
        if party or role != "intermediary":
            body[role] = party
    return body


def row_contract_id(point_id: str, external_ref: str | None, terms: Terms) -> uuid.UUID:
    """The same row of the same point always names the same contract: by its external_ref when it has one, else
    by its terms (in their canonical form, so 900000.00 and a re-typed 900000.00 agree)."""
    if external_ref is not None:
        return uuid.uuid5(_NAMESPACE, f"{point_id}\x1fref\x1f{external_ref}")
    canonical = json.dumps(terms.to_record(), sort_keys=True, ensure_ascii=False)
    return uuid.uuid5(_NAMESPACE, f"{point_id}\x1fterms\x1f{canonical}")


def _moment(value: str | None, errors: list[tuple[str, str]]) -> datetime | None:
    """RFC 3339 with an offset as in the API; a spreadsheet's date or time without one is Beijing time."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("/", "-"))
    except ValueError:
        errors.append(("certified_at", f"{value!r} is not a time (RFC 3339, or YYYY-MM-DD HH:MM in Beijing time)"))
        return None
    if len(value) <= 10:  # a date alone: the start of that day
        moment = datetime.combine(moment.date(), time())
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=SHANGHAI)


def _yes_no(value: str | None, errors: list[tuple[str, str]]) -> bool | None:
    if value is None or value.lower() in _NO:
        return False
    if value.lower() in _YES:
        return True
    errors.append(("certify", f"{value!r} is neither yes/no nor 是/否"))
    return None


# --- the row's command ------------------------------------------------------------------------------------------

REGISTERED, CERTIFIED, ALREADY = "registered", "certified", "already_registered"


def register_row(plan: RowPlan, actor: PointActor, now: datetime) -> commands.Command[str]:
    """Submit the row's contract and, when the row asks, certify it, in one command: both or neither are kept.
    A contract the row has registered before is left as it is."""
    submit = commands.submit(plan.contract_id, actor, plan.terms, now)
    certify = commands.certify(
        plan.contract_id, actor, plan.certified_at or now, now, None, plan.expert_review_ref, None
    )

    def run(uow: UnitOfWork) -> str:
        try:
            submit(uow)
        except AlreadySubmitted:
            return ALREADY
        if not plan.certify:
            return REGISTERED
        certify(uow)
        return CERTIFIED

    return run


REFUSALS = (InvalidTerms, OutsideJurisdiction, NotAllowedInState, RowRefused)


class _RowScope:
    """One row's view of a batch's unit of work: the aggregates the row adds join the batch only when the whole
    row succeeded. (An aggregate the row loads, the registration book, is changed only after every check of the
    certification has passed: commands.certify issues the number last.)"""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow
        self.added: dict[uuid.UUID, object] = {}

    def is_new(self, aggregate_id: uuid.UUID) -> bool:
        return aggregate_id not in self.added and self._uow.is_new(aggregate_id)

    def get(self, aggregate_id: uuid.UUID):
        return self.added.get(aggregate_id) or self._uow.get(aggregate_id)

    def add(self, aggregate) -> None:
        self.added[aggregate.id] = aggregate


def register_rows(plans: list[RowPlan], actor: PointActor, now: datetime) -> commands.Command[list[object]]:
    """register_row for many rows in one command: the writer runs it (and loads the registration book) once for
    the lot. Each row is still all or nothing; a refused row is answered as its exception, in row order."""
    rows = [register_row(plan, actor, now) for plan in plans]

    def run(uow: UnitOfWork) -> list[object]:
        outcomes: list[object] = []
        for command in rows:
            scope = _RowScope(uow)
            try:
                outcome = command(scope)
            except REFUSALS as refused:
                outcomes.append(refused)
                continue
            for aggregate in scope.added.values():
                uow.add(aggregate)
            outcomes.append(outcome)
        return outcomes

    return run


def refusal(row: int, exc: BaseException) -> list[RowError] | None:
    """The row errors an exception of a row's command stands for; None when it is no refusal of the row (the
    store failed) and the import must stop."""
    if isinstance(exc, InvalidTerms | RowRefused):
        return [RowError(row, column_of_field(f), m) for f, m in exc.errors]
    if isinstance(exc, OutsideJurisdiction):
        return [RowError(row, "seller_region", f"outside your jurisdiction: {exc}")]
    if isinstance(exc, NotAllowedInState | Conflict):
        return [RowError(row, "row", str(exc))]
    return None


def column_of_field(domain_field: str) -> str:
    """The spreadsheet column of a field of the API or the domain: seller.credit_code is seller_credit_code."""
    name = domain_field.replace(".", "_")
    return name if name in COLUMN_NAMES else {"seller": "seller_name", "buyer": "buyer_name"}.get(name, name)


# --- the job ----------------------------------------------------------------------------------------------------

RUNNING, DONE, FAILED = "running", "done", "failed"


@dataclass
class ImportJob:
    id: str
    point_id: str
    filename: str
    status: str = RUNNING
    rows: int = 0  # data rows in the file
    processed: int = 0
    registered: int = 0  # new contracts, certified or not
    certified: int = 0
    already_registered: int = 0  # registered by an earlier import of the same rows: skipped
    rejected: int = 0
    message: str | None = None
    created_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def progress(self) -> float:
        return 1.0 if self.status == DONE or not self.rows else round(self.processed / self.rows, 4)

    def count(self, outcome: str) -> None:
        self.processed += 1
        if outcome == ALREADY:
            self.already_registered += 1
        else:
            self.registered += 1
            self.certified += outcome == CERTIFIED


class ImportJobs(Protocol):
    """Where import jobs, their progress and their rejected rows are kept."""

    async def create(self, job: ImportJob) -> None: ...

    async def update(self, job: ImportJob, errors: list[RowError]) -> None:
        """Save the job's counts and status, and add these rejected rows."""
        ...

    async def get(self, job_id: str) -> ImportJob | None: ...

    def errors(self, job_id: str) -> AsyncIterator[RowError]:
        """The job's rejected rows, in row order."""
        ...


class RowSource(Protocol):
    """A batch list as rows of text cells: `rows` data rows, numbered from 2 (the header is row 1)."""

    rows: int

    def __iter__(self) -> Iterator[tuple[int, Mapping[str, str]]]: ...


@dataclass
class ImportRun:
    """One import: the rows of `source` through `runner` for `actor`, counted into `job`.

    `planner` (optional): an executor, e.g. a pool of worker processes, that plans chunks of rows (plan_rows: the
    API's schema and the construction of the terms) while the writer stores earlier ones. The rows still reach
    the writer in file order, so registration numbers and the back-dating rule see the file's order whoever
    planned them."""

    job: ImportJob
    actor: PointActor
    runner: CommandRunner
    jobs: ImportJobs
    clock: Callable[[], datetime]
    read_terms: TermsReader
    on_progress: Callable[[ImportJob], None] = lambda _job: None
    chunk: int = 2_000  # rows read, planned and sent to the writer at once; two chunks are with the writer
    rows_per_command: int = 250  # rows in one command: one run of it, one load of the registration book
    planner: Executor | None = None
    plans_ahead: int = 3  # chunks being planned by the planner while the writer works
    _pending: list[RowError] = field(default_factory=list)

    async def run(self, source: Iterable[tuple[int, Mapping[str, str]]]) -> ImportJob:
        """Import every row; the job ends done, or failed when the store failed (rows already kept stay kept:
        importing the file again completes it)."""
        with fewer_collections():  # millions of short-lived objects, no cycles
            return await self._run(source)

    async def _run(self, source: Iterable[tuple[int, Mapping[str, str]]]) -> ImportJob:
        planning: deque[asyncio.Future] = deque()  # chunks being planned, in file order
        in_flight: asyncio.Task | None = None
        chunks = _chunks(source, self.chunk)
        ahead = self.plans_ahead if self.planner is not None else 1
        try:
            while True:
                while len(planning) < ahead:
                    # The file is read in a thread, so that a large XLSX does not hold up the service's requests.
                    chunk = await asyncio.to_thread(next, chunks, None)
                    if chunk is None:
                        break
                    planning.append(self._plan(chunk))
                if not planning:
                    break
                rows, planned = await planning.popleft()
                sent = asyncio.ensure_future(self._send(rows, planned))
                if in_flight is not None:
                    await self._settle(in_flight)
                in_flight = sent
            if in_flight is not None:
                await self._settle(in_flight)
                in_flight = None
            self.job.status = DONE
        except Exception as exc:
            self.job.status, self.job.message = FAILED, f"the import stopped: {exc}"
            for pending in (in_flight, *planning):
                if pending is not None:
                    pending.cancel()
        self.job.finished_at = self.clock()
        await self._save()
        return self.job

    def _plan(self, chunk: list[tuple[int, Mapping[str, str]]]) -> asyncio.Future:
        """The chunk's row numbers and plans: from the planner, or made here at once."""
        rows = [row for row, _values in chunk]
        if self.planner is None:
            done = asyncio.get_running_loop().create_future()
            done.set_result((rows, plan_rows(self.actor.point_id, chunk, self.read_terms)))
            return done
        planned = asyncio.get_running_loop().run_in_executor(
            self.planner, plan_rows, self.actor.point_id, chunk, self.read_terms
        )
        return asyncio.ensure_future(_with_rows(rows, planned))

    async def _send(self, rows: list[int], planned: list[Planned]) -> list[tuple[int, object]]:
        now = self.clock()
        outcomes: list[tuple[int, object]] = []
        plans: list[RowPlan] = []
        for row, plan in zip(rows, planned):
            if isinstance(plan, RowPlan):
                plans.append(plan)
            else:
                outcomes.append((row, RowRefused(plan)))
        batches = [plans[i : i + self.rows_per_command] for i in range(0, len(plans), self.rows_per_command)]
        sent = [self.runner.execute(register_rows(batch, self.actor, now)) for batch in batches]
        for batch, answer in zip(batches, await asyncio.gather(*sent, return_exceptions=True)):
            if isinstance(answer, BaseException):
                raise answer  # not a refusal of a row (those are answered in the list): the store failed
            outcomes += [(plan.row, outcome) for plan, outcome in zip(batch, answer.value)]
        return sorted(outcomes, key=lambda outcome: outcome[0])

    async def _settle(self, sent: asyncio.Task) -> None:
        for row, outcome in await sent:
            if isinstance(outcome, BaseException):
                errors = refusal(row, outcome)
                if errors is None:
                    raise outcome
                self.job.processed += 1
                self.job.rejected += 1
                self._pending += errors
            else:
                self.job.count(outcome)
        await self._save()
        self.on_progress(self.job)

    async def _save(self) -> None:
        errors, self._pending = self._pending, []
        await self.jobs.update(self.job, errors)


async def _with_rows(rows: list[int], planned: Awaitable[list[Planned]]) -> tuple[list[int], list[Planned]]:
    return rows, await planned


def _chunks(rows: Iterable[tuple[int, Mapping[str, str]]], size: int) -> Iterator[list[tuple[int, Mapping[str, str]]]]:
    chunk: list[tuple[int, Mapping[str, str]]] = []
    for item in rows:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
