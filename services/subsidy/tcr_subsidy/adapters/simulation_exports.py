"""A kept simulation as CSV (UTF-8 with BOM, one file, a `table` column saying which table a row belongs to) and
XLSX (one sheet a table, formatted like the annual report: bilingual headings, money with two places, changes in
red when negative)."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter

from tcr_shared.language.regions import ningxia_regions

MONEY = ("in_force", "candidate", "difference")
COUNTS = (
    "awards",
    "beneficiaries",
    "capped",
    "in_force_awards",
    "in_force_beneficiaries",
    "in_force_capped",
)
LABELS = {
    "policy_year": "政策年度 Policy year",
    "programme": "项目 Programme",
    "region": "地区代码 Region",
    "region_name": "地区 Name",
    "beneficiary": "受益方 Beneficiary",
    "name": "名称 Name",
    "kind": "类型 Kind",
    "in_force": "现行规则 In force",
    "candidate": "拟议规则 Candidate",
    "difference": "差额 Difference",
    "awards": "奖补笔数 Awards (candidate)",
    "beneficiaries": "受益方数 Beneficiaries (candidate)",
    "capped": "封顶笔数 Capped (candidate)",
    "in_force_awards": "奖补笔数 Awards (in force)",
    "in_force_beneficiaries": "受益方数 Beneficiaries (in force)",
    "in_force_capped": "封顶笔数 Capped (in force)",
}
TABLES = {
    "totals": ("policy_year", "programme", *MONEY, *COUNTS),
    "regions": ("policy_year", "programme", "region", "region_name", *MONEY, *COUNTS),
    "beneficiaries": ("beneficiary", "name", "kind", "region", *MONEY, "in_force_awards", "awards"),
}
SHEETS = {"totals": "合计 Totals", "regions": "地区 Regions", "beneficiaries": "受益方 Beneficiaries"}
CSV_COLUMNS = (
    "table",
    "policy_year",
    "programme",
    "region",
    "region_name",
    "beneficiary",
    "name",
    "kind",
    *MONEY,
    *COUNTS,
)


def region_name(code: str | None) -> str:
    region = ningxia_regions().get(code or "")
    return f"{region.name_zh} {region.name_en}" if region else ""


def rows(simulation: dict[str, Any], table: str) -> list[dict[str, Any]]:
    found = simulation["result"][table]
    if table == "regions":
        return [{**r, "region_name": region_name(r["region"])} for r in found]
    return found


def simulation_csv(simulation: dict[str, Any]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for table in TABLES:
        for row in rows(simulation, table):
            writer.writerow([table] + ["" if row.get(c) is None else row.get(c) for c in CSV_COLUMNS[1:]])
    return "\ufeff".encode() + out.getvalue().encode("utf-8")


HEADER_FILL = PatternFill("solid", fgColor="1F4E79")
THIN = Side(style="thin", color="9BC2E6")
BORDER = Border(left=THIN, right=THIN, top=THIN, bottom=THIN)
MONEY_FORMAT = "#,##0.00;[Red]-#,##0.00"
CHANGE_FORMAT = "+#,##0.00;[Red]-#,##0.00;0.00"
COUNT_FORMAT = "#,##0"


def _cell_value(column: str, value: Any) -> Any:
    if column in MONEY and value is not None:
        return Decimal(value)
    return value


def simulation_xlsx(simulation: dict[str, Any]) -> bytes:
    workbook = Workbook()
    workbook.remove(workbook.active)
    result = simulation["result"]
    heading = (
        f"政策模拟 Policy what-if {simulation['from_year']}-{simulation['to_year']} · "
        f"{', '.join(result['rule_sets_candidate'])} vs {', '.join(result['rule_sets_in_force'])}"
    )
    note = (
        f"金额单位：元 Amounts in yuan · registry position {result['registry_position']} · "
        f"run by {simulation['created_by']} at {simulation['created_at']} · simulation {simulation['id']}"
    )
    for table, columns in TABLES.items():
        ws = workbook.create_sheet(SHEETS[table])
        ws.cell(row=1, column=1, value=heading).font = Font(bold=True, size=14, color="1F4E79")
        ws.cell(row=2, column=1, value=note).font = Font(italic=True, color="595959")
        for j, column in enumerate(columns, start=1):
            cell = ws.cell(row=4, column=j, value=LABELS[column])
            cell.font, cell.fill, cell.border = Font(bold=True, color="FFFFFF"), HEADER_FILL, BORDER
            cell.alignment = Alignment(wrap_text=True, vertical="center", horizontal="center")
            ws.column_dimensions[get_column_letter(j)].width = 22 if column in ("name", "region_name") else 16
        for i, row in enumerate(rows(simulation, table), start=5):
            for j, column in enumerate(columns, start=1):
                cell = ws.cell(row=i, column=j, value=_cell_value(column, row.get(column)))
                cell.border = BORDER
                if column in MONEY:
                    cell.number_format = CHANGE_FORMAT if column == "difference" else MONEY_FORMAT
                elif column in COUNTS:
                    cell.number_format = COUNT_FORMAT
        ws.freeze_panes = "A5"
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
