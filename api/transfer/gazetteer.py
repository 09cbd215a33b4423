"""Import the gazetteer's places: roads (lines), compounds (polygons), POIs and house-number
plates (points), upserted by code like buildings — every feature checked first, any problem
rejects the whole file with a report naming file, feature, field and reason; a place more
than 5 km outside the active generation's grids is refused, a name said twice is reported
(`api.transfer.gazetteer_checks`).

Aliases are one cell: names separated by | ; ； 、 , or ， (an export writes them joined by |),
or a JSON list. House numbers are stored as plates read them, normalised: full-width digits
and a trailing 号 removed (19号 → 19, １９-１ → 19-1, 19甲号 → 19甲).
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine

from api.db import audit
from api.db.gazetteer_writes import cell, existing_codes
from api.db.imports import stage_and_upsert
from api.transfer.field_tables import at_most
from api.transfer.fields import BadValue, TargetField, map_rows, text_value
from api.transfer.gazetteer_checks import duplicate_notes, outside_issues
from api.transfer.geometry import prepare_geometries
from api.transfer.hierarchy import duplicate_codes
from api.transfer.read import SourceLayer
from api.transfer.report import ImportIssue, ImportRejected, ImportReport

ALIAS_SEPARATORS = re.compile(r"[|;；、,，]")
MAX_ALIASES = 20
MAX_NAME_CHARACTERS = 100  # the tables' CHECK (length(name) BETWEEN 1 AND 100)


def alias_list(value: Any) -> list[str] | None:
    """A cell of aliases → a list of distinct names (None when empty)."""
    if value is None:
        return None
    if isinstance(value, list | tuple):
        items = [str(v) for v in value]
    else:
        cell_text = str(value).strip()
        if cell_text.startswith("["):
            try:
                loaded = json.loads(cell_text)
            except json.JSONDecodeError as error:
                raise BadValue(f"别名列表不是有效的 JSON：{cell_text[:40]!r}") from error
            if not isinstance(loaded, list):
                raise BadValue("别名应为名称列表")
            items = [str(v) for v in loaded]
        else:
            items = ALIAS_SEPARATORS.split(cell_text)
    names = list(dict.fromkeys(item.strip() for item in items if item and item.strip()))
    return names or None


def check_aliases(names: list[str]) -> str | None:
    if len(names) > MAX_ALIASES:
        return f"别名最多 {MAX_ALIASES} 个，此处有 {len(names)} 个"
    long = next((n for n in names if len(n) > MAX_NAME_CHARACTERS), None)
    return f"别名最长 {MAX_NAME_CHARACTERS} 个字符：{long[:20]}…" if long else None


def plate_number(value: Any) -> str | None:
    """19号 → 19, １９－１ → 19-1 (full width, spaces and a trailing 号 dropped)."""
    raw = text_value(value)
    if raw is None:
        return None
    number = re.sub(r"\s+", "", unicodedata.normalize("NFKC", raw)).removesuffix("号")
    number = number.replace("－", "-").replace("—", "-")
    if not number or not number[0].isdigit():
        raise BadValue(f"门牌号应以数字开头，实为 {raw!r}")
    return number


NAME = TargetField(
    "name",
    ("name", "名称", "Name", "NAME", "地名", "标准名称"),
    required=True,
    check=at_most(MAX_NAME_CHARACTERS),
)
ALIASES = TargetField(
    "aliases", ("aliases", "alias", "别名", "俗称"), alias_list, check=check_aliases
)


def _code(*more: str) -> TargetField:
    return TargetField("code", ("code", "编码", "编号", "id", *more), check=at_most(64))


ROAD_FIELDS = (
    _code("道路编码", "road_code"),
    TargetField(
        "name",
        ("name", "名称", "路名", "道路名称", "Name", "NAME"),
        required=True,
        check=at_most(MAX_NAME_CHARACTERS),
    ),
    ALIASES,
    TargetField("kind", ("kind", "类型", "等级", "道路等级"), check=at_most(32)),
)
COMPOUND_FIELDS = (
    _code("小区编码", "compound_code"),
    TargetField(
        "name",
        ("name", "名称", "小区名称", "Name", "NAME"),
        required=True,
        check=at_most(MAX_NAME_CHARACTERS),
    ),
    ALIASES,
    TargetField("kind", ("kind", "类型", "小区类型"), check=at_most(32)),
)
POI_FIELDS = (
    _code("兴趣点编码", "poi_code"),
    NAME,
    ALIASES,
    TargetField("category", ("category", "类别", "类型", "分类"), check=at_most(32)),
)
HOUSE_NUMBER_FIELDS = (
    _code("门牌编码"),
    TargetField(
        "road",
        ("road", "路名", "街路巷", "道路", "道路名称"),
        required=True,
        check=at_most(MAX_NAME_CHARACTERS),
    ),
    TargetField(
        "number", ("number", "门牌号", "门牌", "号"), plate_number, required=True, check=at_most(32)
    ),
    TargetField("compound_code", ("compound_code", "小区编码", "compound"), check=at_most(64)),
)


@dataclass(frozen=True)
class PlaceKind:
    table: str
    fields: tuple[TargetField, ...]
    shape: str  # line | polygon | point
    label: str  # for messages


PLACE_KINDS = {
    "roads": PlaceKind("road", ROAD_FIELDS, "line", "道路"),
    "compounds": PlaceKind("compound", COMPOUND_FIELDS, "polygon", "小区"),
    "pois": PlaceKind("poi", POI_FIELDS, "point", "兴趣点"),
    "house-numbers": PlaceKind("house_number", HOUSE_NUMBER_FIELDS, "point", "门牌"),
}


def import_places(
    engine: Engine,
    source: SourceLayer,
    kind: str,
    *,
    crs: str | None = None,
    fields: dict[str, str | None] | None = None,
    repair: bool = False,
    dry_run: bool = False,
    actor: str = "cli",
) -> ImportReport:
    """Roads, compounds, POIs or house numbers (`kind`: a key of PLACE_KINDS), upserted by code."""
    spec = PLACE_KINDS[kind]
    report = ImportReport(
        file=source.path.name,
        kind=kind,
        format=source.format,
        features=len(source),
        encoding=source.encoding,
        notes=list(source.notes),
        dry_run=dry_run,
    )
    mapped = map_rows(source.fields, len(source), spec.fields, fields or {}, source.path.name)
    report.columns = mapped.columns
    report.errors += mapped.issues
    if not mapped.rows:
        if not report.errors:
            report.errors.append(ImportIssue(None, None, "文件中没有要素"))
        raise ImportRejected(report)
    ignored = sorted({name for row in mapped.rows for name in row["attributes"]})
    if ignored:
        report.notes.append(f"{spec.label}没有自由属性，已忽略字段：{'、'.join(ignored)}")
    if mapped.columns.get("code") is None:
        stem = Path(source.path.name).stem
        for index, row in enumerate(mapped.rows, start=1):
            row["code"] = f"{stem}-{index}"
        report.notes.append(f"文件没有编码字段，已按“{stem}-序号”生成编码")
    codes = [row["code"] for row in mapped.rows]
    geometries = prepare_geometries(
        source,
        report,
        codes,
        polygonal=spec.shape == "polygon",
        linear=spec.shape == "line",
        crs_given=crs,
        repair=repair,
    )
    duplicate_codes(codes, report)
    if report.errors:
        raise ImportRejected(report)
    names = [t.name for t in spec.fields]
    with engine.connect() as connection, connection.begin() as transaction:
        outside, unchecked = outside_issues(connection, geometries, codes, spec.label)
        report.errors += outside
        report.notes += [unchecked] if unchecked else []
        if report.errors:
            raise ImportRejected(report)
        report.notes += duplicate_notes(connection, mapped.rows, spec.table, spec.label)
        if spec.table == "house_number":
            _note_unknown_compounds(connection, mapped.rows, report)
        for row in mapped.rows:
            if "aliases" in row:
                row["aliases"] = cell("aliases", row["aliases"] or [])
        counts = stage_and_upsert(connection, spec.table, names, mapped.rows, geometries)
        report.created, report.updated, report.unchanged = counts
        if dry_run:
            transaction.rollback()
            return report
        audit.record(
            connection,
            actor,
            f"import.{spec.table}",
            spec.table,
            None,
            {"file": source.path.name, "created": report.created, "updated": report.updated},
        )
    return report


def _note_unknown_compounds(connection: Connection, rows: list[dict], report: ImportReport) -> None:
    """Plates may name compounds imported later: an unknown compound code is said, not refused."""
    named = sorted({row["compound_code"] for row in rows if row["compound_code"]})
    known = set(existing_codes(connection, "compound", named))
    unknown = [code for code in named if code not in known]
    if unknown:
        shown = "、".join(unknown[:10]) + ("…" if len(unknown) > 10 else "")
        report.notes.append(f"{len(unknown)} 个小区编码在小区表中还没有：{shown}")
