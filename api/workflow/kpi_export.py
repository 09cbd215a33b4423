"""The KPI table as an Excel workbook (.xlsx): people here live in Excel and WPS."""

from __future__ import annotations

import io
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

# (field, Chinese header, number format or None)
COLUMNS = (
    ("key", "编码", None),
    ("name", "名称", None),
    ("received", "受理数", "0"),
    ("accepted", "立案数", "0"),
    ("accepted_on_time", "按时响应数", "0"),
    ("response_rate", "响应率", "0.0%"),
    ("due", "应结案数", "0"),
    ("closed", "结案数", "0"),
    ("closure_rate", "结案率", "0.0%"),
    ("postponed", "延期数", "0"),
    ("closed_on_time", "按期结案数", "0"),
    ("on_time_rate", "按期结案率", "0.0%"),
    ("reworked", "返工数", "0"),
    ("rework_rate", "返工率", "0.0%"),
    ("mean_handling_hours", "平均处置时长（工作小时）", "0.00"),
    ("p90_handling_hours", "处置时长 P90（工作小时）", "0.00"),
    ("overdue_now", "当前逾期", "0"),
    ("supervised", "督办数", "0"),
    ("evaluated", "评价数", "0"),
    ("satisfaction", "满意度（1–5）", "0.00"),
)
GROUP_LABELS = {
    "grid": "网格",
    "community": "社区",
    "street": "街道",
    "unit": "处置单位",
    "staff": "人员",
}


def _cell(sheet: WriteOnlyWorksheet, value: Any, number_format: str | None) -> WriteOnlyCell:
    if isinstance(value, str):
        value = ILLEGAL_CHARACTERS_RE.sub("\ufffd", value)  # control characters a sheet cannot hold
    cell = WriteOnlyCell(sheet, value=value)
    if isinstance(value, str):
        cell.data_type = "s"  # a name starting with "=" is text, never a formula
    elif number_format and value is not None:
        cell.number_format = number_format
    return cell


def kpi_workbook(report: dict[str, Any]) -> bytes:
    """One sheet: a title row, the headers, a row per group and the totals."""
    book = Workbook(write_only=True)
    sheet = book.create_sheet(title="考核指标")
    label = GROUP_LABELS[report["group_by"]]
    sheet.append([_cell(sheet, f"按{label}统计 {report['from']} 至 {report['to']}", None)])
    sheet.append([_cell(sheet, header, None) for _, header, _ in COLUMNS])
    for row in [*report["rows"], {"key": "合计", "name": "", **report["totals"]}]:
        sheet.append([_cell(sheet, row.get(name), fmt) for name, _, fmt in COLUMNS])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
