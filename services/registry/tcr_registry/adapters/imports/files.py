"""Batch-list files: reading a CSV (UTF-8, with or without BOM) or XLSX upload into rows of text cells, and
writing the rejected rows and the template. Cells become text here, so the application sees one form whatever
the file: an XLSX number 900000 is "900000.00" (money as in the API), a date cell is "2025-03-01"."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Mapping
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

from openpyxl import Workbook, load_workbook
from openpyxl.styles import Font, PatternFill

from tcr_registry.application.imports import COLUMNS, ImportFileError, RowError, header_columns

XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_ZIP_MAGIC = b"PK\x03\x04"


def is_xlsx(path: Path) -> bool:
    with open(path, "rb") as file:
        return file.read(4) == _ZIP_MAGIC


class BatchList:
    """The data rows of a batch-list file, numbered as a spreadsheet numbers them (the header is row 1); rows with
    no value at all are skipped. `rows` is known before reading them, for progress and an ETA."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.xlsx = is_xlsx(self.path)
        with self._open() as cells:
            header = next(cells, None)
            if header is None:
                raise ImportFileError("the file is empty: it needs a header row", [("file", "is empty")])
            self.columns = header_columns([_text(cell) for cell in header])
            self.rows = sum(1 for line in cells if _has_values(line))

    def __iter__(self) -> Iterator[tuple[int, Line]]:
        columns = tuple(self.columns)
        with self._open() as cells:
            next(cells)
            for number, line in enumerate(cells, start=2):
                if _has_values(line):
                    yield number, Line(columns, line)

    def _open(self) -> _Cells:
        return _Cells(self.path, self.xlsx)


class Line(Mapping[str, str]):
    """One line's cells by column name, as text (an empty cell is no value). Made text when read, not when the file
    is: a large file's rows are read by the importing process and planned by worker processes, which then also do
    this conversion; pickled as the raw cells and the (shared) column names."""

    __slots__ = ("_columns", "_cells")

    def __init__(self, columns: tuple[str | None, ...], cells: tuple) -> None:
        self._columns, self._cells = columns, cells

    def __reduce__(self) -> tuple:
        return Line, (self._columns, self._cells)

    def values_by_column(self) -> dict[str, str]:
        values = {}
        for name, cell in zip(self._columns, self._cells):
            if name is None or cell is None:
                continue
            if type(cell) is str:  # every CSV cell: what _text and _money_text make of a str, without the calls
                text = cell.strip()
            else:
                text = _money_text(cell) if name.endswith("amount") else _text(cell)
            if text:
                values[name] = text
        return values

    def items(self):  # one conversion for the usual reader (plan_row)
        return self.values_by_column().items()

    def __getitem__(self, name: str) -> str:
        return self.values_by_column()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.values_by_column())

    def __len__(self) -> int:
        return len(self.values_by_column())


class _Cells:
    """The file's lines as tuples of cells (str for CSV; str, numbers, dates or None for XLSX)."""

    def __init__(self, path: Path, xlsx: bool) -> None:
        self._path, self._xlsx = path, xlsx

    def __enter__(self) -> Iterator[tuple]:
        if self._xlsx:
            self._file = open(self._path, "rb")  # noqa: SIM115 - closed in __exit__ (a file object: any file name)
            try:
                self._book = load_workbook(self._file, read_only=True, data_only=True)
            except Exception as exc:  # openpyxl raises many kinds for a damaged file
                self._file.close()
                raise ImportFileError(
                    f"the XLSX file cannot be read: {exc}", [("file", "is not a readable XLSX")]
                ) from None
            return self._book.worksheets[0].iter_rows(values_only=True)
        self._file = open(self._path, encoding="utf-8-sig", newline="")  # noqa: SIM115 - closed in __exit__
        return self._csv_lines()

    def _csv_lines(self) -> Iterator[tuple]:
        try:
            for line in csv.reader(self._file):
                yield tuple(line)
        except UnicodeDecodeError:
            raise ImportFileError(
                "the CSV file is not UTF-8 text: save it as CSV UTF-8 (with or without BOM)",
                [("file", "is not UTF-8 CSV")],
            ) from None

    def __exit__(self, *_exc) -> None:
        if self._xlsx:
            self._book.close()
        self._file.close()


def _has_values(line: tuple) -> bool:
    return any(cell is not None and str(cell).strip() for cell in line)


def _text(cell: object) -> str:
    if type(cell) is str:  # every CSV cell, most XLSX cells: the checks below are for the other types
        return cell.strip()
    if cell is None:
        return ""
    if isinstance(cell, datetime):
        return (
            cell.isoformat(sep=" ") if (cell.hour, cell.minute, cell.second) != (0, 0, 0) else cell.date().isoformat()
        )
    if isinstance(cell, date):
        return cell.isoformat()
    if isinstance(cell, bool):
        return "yes" if cell else "no"
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    return str(cell).strip()


def _money_text(cell: object) -> str:
    """An XLSX number as money text. A float with more than two decimals stays as it is, to be refused."""
    if isinstance(cell, int | float) and not isinstance(cell, bool):
        exact = Decimal(repr(cell)) if isinstance(cell, float) else Decimal(cell)
        if exact == exact.quantize(Decimal("0.01")):
            return f"{exact:.2f}"
        return repr(cell)
    return _text(cell)


# --- what the registry writes -----------------------------------------------------------------------------------
ERROR_HEADER = ("row", "field", "message")


def errors_csv(errors: Iterable[RowError]) -> Iterator[bytes]:
    """The rejected rows as CSV with a BOM (so that a spreadsheet opens the Chinese messages as UTF-8)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(ERROR_HEADER)
    yield ("\ufeff" + buffer.getvalue()).encode()
    for error in errors:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow((error.row, error.field, error.message))
        yield buffer.getvalue().encode()


def errors_xlsx(errors: Iterable[RowError]) -> bytes:
    book = Workbook(write_only=True)
    sheet = book.create_sheet("rejected")
    sheet.append(ERROR_HEADER)
    for error in errors:
        sheet.append((error.row, error.field, error.message))
    return _saved(book)


def template_xlsx() -> bytes:
    """The import template: the header row (Chinese and English names; either alone is accepted too), an example
    row, and a sheet that explains each column."""
    book = Workbook()
    sheet = book.active
    sheet.title = "登记清单 batch list"
    sheet.append([f"{c.chinese} ({c.name})" for c in COLUMNS])
    sheet.append([c.example or None for c in COLUMNS])
    bold, required = Font(bold=True), PatternFill("solid", fgColor="FFF2CC")
    for cell, column in zip(sheet[1], COLUMNS):
        cell.font = bold
        if column.required:
            cell.fill = required
        sheet.column_dimensions[cell.column_letter].width = max(14, len(cell.value) + 4)
    sheet.freeze_panes = "A2"
    guide = book.create_sheet("说明 columns")
    guide.append(["column", "中文表头", "required 必填", "what it holds"])
    for c in COLUMNS:
        guide.append([c.name, c.chinese, "yes 是" if c.required else "", c.description])
    for cell in guide[1]:
        cell.font = bold
    return _saved(book)


def _saved(book: Workbook) -> bytes:
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
