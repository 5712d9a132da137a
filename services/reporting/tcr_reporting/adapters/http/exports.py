"""The annual report as CSV (UTF-8 with BOM, so spreadsheet programs read the Chinese names) and XLSX (one
sheet per prefecture plus a summary, formatted), both written from the same JSON report."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter

from tcr_reporting.application.queries import COUNT_FIELDS, REPORT_FIELDS, report_lines

FIELD_LABELS = {
    "outflow_count": ("技术输出 合同数", "Outflow contracts"),
    "outflow_amount": ("技术输出 成交额", "Outflow amount"),
    "outflow_technology_amount": ("技术输出 技术交易额", "Outflow technology amount"),
    "inflow_count": ("技术吸纳 合同数", "Inflow contracts"),
    "inflow_amount": ("技术吸纳 成交额", "Inflow amount"),
    "inflow_technology_amount": ("技术吸纳 技术交易额", "Inflow technology amount"),
    "subsidies_total": ("奖补 合计", "Subsidies total"),
    "subsidies_import": ("奖补 技术引进", "Subsidies: import"),
    "subsidies_export_enterprise": ("奖补 企业输出", "Subsidies: export (enterprise)"),
    "subsidies_export_institution": ("奖补 院所输出", "Subsidies: export (institution)"),
    "subsidies_brokerage": ("奖补 技术中介", "Subsidies: brokerage"),
}
LEVEL_LABELS = {"county": "县区 county", "prefecture": "地市 prefecture", "region": "全区 region"}

CSV_COLUMNS = (
    ["year", "provisional", "due_date", "level", "region", "name_zh", "name_en", "prefecture", "rank", "rank_change"]
    + list(REPORT_FIELDS)
    + [f"previous_{f}" for f in REPORT_FIELDS]
    + [f"change_{f}" for f in REPORT_FIELDS]
)


def report_csv(report: dict[str, Any]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for line in report_lines(report):
        writer.writerow(
            [
                report["year"],
                "true" if report["provisional"] else "false",
                report["due_date"],
                line["level"],
                line["region"],
                line["name"]["zh"],
                line["name"]["en"],
                line["prefecture"] or "",
                "" if line.get("rank") is None else line["rank"],
                "" if line.get("rank_change") is None else line["rank_change"],
            ]
            + [line["figures"][f] for f in REPORT_FIELDS]
            + [line["previous"][f] for f in REPORT_FIELDS]
            + [line["change"][f] for f in REPORT_FIELDS]
        )
    return "\ufeff".encode() + out.getvalue().encode("utf-8")


# --- XLSX ------------------------------------------------------------------------------------------------
MONEY_FORMAT = "#,##0.00;[Red]-#,##0.00"
COUNT_FORMAT = "#,##0;[Red]-#,##0"
CHANGE_MONEY_FORMAT = "+#,##0.00;[Red]-#,##0.00;0.00"
CHANGE_COUNT_FORMAT = "+#,##0;[Red]-#,##0;0"
HEADER_FILL = PatternFill("solid", fgColor="1F4E79")
SUBTOTAL_FILL = PatternFill("solid", fgColor="DDEBF7")
TOTAL_FILL = PatternFill("solid", fgColor="BDD7EE")
THIN = Side(style="thin", color="9BC2E6")
BORDER = Border(left=THIN, right=THIN, top=THIN, bottom=THIN)
XLSX_FIELDS = (
    "outflow_count",
    "outflow_amount",
    "outflow_technology_amount",
    "inflow_count",
    "inflow_amount",
    "inflow_technology_amount",
    "subsidies_total",
)


def _value(field: str, text: Any) -> int | Decimal:
    return int(text) if field in COUNT_FIELDS else Decimal(text)


def _sheet_title(line: dict[str, Any]) -> str:
    title = f"{line['name']['zh']} {line['name']['en']}"
    for bad in "[]:*?/\\":
        title = title.replace(bad, " ")
    return title[:31]


def _write_table(ws, report: dict[str, Any], lines: list[dict[str, Any]], heading: str) -> None:
    columns = ["地区代码 Code", "名称 Name", "English name", "层级 Level", "排名 Rank", "排名变化 Rank change"]
    for f in XLSX_FIELDS:
        zh, en = FIELD_LABELS[f]
        columns.append(f"{zh}\n{en}")
    for f in XLSX_FIELDS:
        zh, en = FIELD_LABELS[f]
        columns.append(f"{zh} 同比变化\n{en}: change vs {report['previous_year']}")
    width = len(columns)
    ws.cell(row=1, column=1, value=heading).font = Font(bold=True, size=14, color="1F4E79")
    ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=width)
    status = (
        "临时数据（年度未结束） PROVISIONAL: the year has not ended"
        if report["provisional"]
        else "最终数据 Final figures"
    )
    note = ws.cell(
        row=2,
        column=1,
        value=f"报送截止 Due by {report['due_date']} · {status} · "
        f"金额单位：元 Amounts in yuan · 生成 Generated {report['generated_at']}",
    )
    note.font = Font(italic=True, color="C00000" if report["provisional"] else "595959")
    ws.merge_cells(start_row=2, start_column=1, end_row=2, end_column=width)
    header_row = 4
    for index, label in enumerate(columns, start=1):
        cell = ws.cell(row=header_row, column=index, value=label)
        cell.font = Font(bold=True, color="FFFFFF")
        cell.fill = HEADER_FILL
        cell.alignment = Alignment(wrap_text=True, vertical="center", horizontal="center")
        cell.border = BORDER
    ws.row_dimensions[header_row].height = 48
    for offset, line in enumerate(lines, start=1):
        row = header_row + offset
        values: list[Any] = [
            line["region"],
            line["name"]["zh"],
            line["name"]["en"],
            LEVEL_LABELS.get(line["level"], line["level"]),
            line.get("rank"),
            line.get("rank_change"),
        ]
        values += [_value(f, line["figures"][f]) for f in XLSX_FIELDS]
        values += [_value(f, line["change"][f]) for f in XLSX_FIELDS]
        fill = TOTAL_FILL if line["level"] == "region" else SUBTOTAL_FILL if line["level"] == "prefecture" else None
        for index, value in enumerate(values, start=1):
            cell = ws.cell(row=row, column=index, value=value)
            cell.border = BORDER
            if fill is not None:
                cell.fill = fill
                cell.font = Font(bold=True)
            if index > 6:
                field = XLSX_FIELDS[(index - 7) % len(XLSX_FIELDS)]
                is_change = index > 6 + len(XLSX_FIELDS)
                if field in COUNT_FIELDS:
                    cell.number_format = CHANGE_COUNT_FORMAT if is_change else COUNT_FORMAT
                else:
                    cell.number_format = CHANGE_MONEY_FORMAT if is_change else MONEY_FORMAT
    widths = [10, 14, 22, 16, 8, 10] + [18] * (2 * len(XLSX_FIELDS))
    for index, w in enumerate(widths, start=1):
        ws.column_dimensions[get_column_letter(index)].width = w
    ws.freeze_panes = ws.cell(row=header_row + 1, column=4)
    ws.auto_filter.ref = f"A{header_row}:{get_column_letter(width)}{header_row + len(lines)}"
    ws.sheet_view.zoomScale = 90
    ws.print_title_rows = f"{header_row}:{header_row}"
    ws.page_setup.orientation = "landscape"
    ws.page_setup.fitToWidth = 1


def report_xlsx(report: dict[str, Any]) -> bytes:
    workbook = Workbook()
    summary = workbook.active
    summary.title = "汇总 Summary"
    _write_table(
        summary,
        report,
        [*report["prefectures"], report["region"]],
        f"{report['title']['zh']} — {report['title']['en']}",
    )
    for prefecture in report["prefectures"]:
        ws = workbook.create_sheet(_sheet_title(prefecture))
        _write_table(
            ws,
            report,
            [*prefecture["counties"], prefecture],
            f"{prefecture['name']['zh']} {prefecture['name']['en']} · {report['year']}",
        )
    workbook.properties.title = report["title"]["en"]
    workbook.properties.creator = "tcr-reporting"
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()
