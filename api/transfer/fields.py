"""Map a file's attribute columns onto wangge's fields, parsing values with row-level errors.

Each target field has candidate column names (English and Chinese); `--code-field` etc.
override them. Columns that map to nothing are kept as free attributes, so nothing in the
file is lost.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from api.transfer.report import ImportIssue

Parser = Callable[[Any], Any]


class BadValue(ValueError):
    pass


def text_value(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # a numeric code column: 320571.0 → "320571"
    text = str(value).strip()
    return text or None


def int_value(value: Any) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError) as error:
        raise BadValue(f"应为整数，实为 {value!r}") from error
    if not math.isfinite(number) or not number.is_integer():
        raise BadValue(f"应为整数，实为 {value!r}")
    return int(number)


def float_value(value: Any) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError) as error:
        raise BadValue(f"应为数字，实为 {value!r}") from error
    if not math.isfinite(number):
        raise BadValue(f"应为有限数字，实为 {value!r}")
    return number


def choice(options: dict[str, str]) -> Parser:
    """Accept English names or Chinese labels (村居 → residential)."""

    def parse(value: Any) -> str | None:
        text = text_value(value)
        if text is None:
            return None
        key = options.get(text) or options.get(text.lower())
        if key is None:
            allowed = "、".join(dict.fromkeys(options.values()))
            raise BadValue(f"取值 {text!r} 不在允许范围内（{allowed}，或其中文名）")
        return key

    return parse


@dataclass(frozen=True)
class TargetField:
    name: str
    candidates: tuple[str, ...]
    parse: Parser = text_value
    required: bool = False
    check: Callable[[Any], str | None] | None = None


@dataclass
class MappedRows:
    rows: list[dict[str, Any]]
    columns: dict[str, str | None]  # target field → source column used
    issues: list[ImportIssue] = field(default_factory=list)


def resolve_columns(
    available: list[str], targets: tuple[TargetField, ...], chosen: dict[str, str | None], file: str
) -> tuple[dict[str, str | None], list[ImportIssue]]:
    columns: dict[str, str | None] = {}
    issues: list[ImportIssue] = []
    lowered = {c.lower(): c for c in available}
    for target in targets:
        explicit = chosen.get(target.name)
        if explicit:
            if explicit not in available:
                issues.append(
                    ImportIssue(
                        None,
                        target.name,
                        f"{file} 没有字段 {explicit!r}（现有字段：{', '.join(available) or '无'}）",
                    )
                )
            columns[target.name] = explicit
            continue
        found = next((lowered[c.lower()] for c in target.candidates if c.lower() in lowered), None)
        if found is None and target.required:
            issues.append(
                ImportIssue(
                    None,
                    target.name,
                    f"{file} 中找不到 {target.name} 字段（尝试了 {', '.join(target.candidates)}；"
                    f"现有字段：{', '.join(available) or '无'}），请用 --{target.name.replace('_', '-')}-field 指定",
                )
            )
        columns[target.name] = found
    return columns, issues


def map_rows(
    fields: dict[str, list[Any]],
    count: int,
    targets: tuple[TargetField, ...],
    chosen: dict[str, str | None],
    file: str,
) -> MappedRows:
    if count == 0:
        return MappedRows([], {}, [ImportIssue(None, None, f"{file} 中没有要素")])
    available = list(fields)
    columns, issues = resolve_columns(available, targets, chosen, file)
    if issues:
        return MappedRows([], columns, issues)
    used = {c for c in columns.values() if c}
    rows: list[dict[str, Any]] = []
    for index in range(count):
        row: dict[str, Any] = {}
        for target in targets:
            column = columns[target.name]
            raw_value = fields[column][index] if column else None
            try:
                value = target.parse(raw_value)
            except BadValue as error:
                issues.append(ImportIssue(index + 1, column, str(error)))
                value = None
            else:
                problem = target.check(value) if (target.check and value is not None) else None
                if problem:
                    issues.append(ImportIssue(index + 1, column, problem))
            if value is None and target.required:
                issues.append(
                    ImportIssue(index + 1, column or target.name, f"{target.name} 不能为空")
                )
            row[target.name] = value
        row["attributes"] = {
            name: _json_safe(values[index])
            for name, values in fields.items()
            if name not in used and values[index] is not None
        }
        rows.append(row)
    return MappedRows(rows, columns, issues)


def _json_safe(value: Any) -> Any:
    if isinstance(value, str | int | float | bool):
        return value
    return str(value)
