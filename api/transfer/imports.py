"""Import grids, buildings and monitoring points: validate everything, then write in one transaction.

A grid import creates a new generation (the active one plus the file's changes) and activates
it, so history stays answerable. Buildings and monitoring points are upserted by code. Any
problem rejects the whole file with a report naming file, feature, field and reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from sqlalchemy import Connection, Engine, text

from api.codes import code_problem
from api.coverage import insert_check, run_check
from api.db import audit
from api.db.copy import copy_rows
from api.db.versioning import active_or_none, grids_in_generation, lock_generations, publish
from api.drafts.publish import go_live
from api.drafts.store import register_draft
from api.transfer.fields import TargetField, choice, float_value, int_value, map_rows
from api.transfer.read import SourceLayer
from api.transfer.report import ImportIssue, ImportRejected, ImportReport
from spatial import validity
from spatial.coverage import ERROR_KINDS, CheckOptions
from spatial.crs import WGS84, areas_m2, crs_label, normalise_crs, parse_crs, transform
from spatial.editing import SAME_GEOMETRY_DEG, GridRow

KINDS = {
    "residential": "residential",
    "村居": "residential",
    "commercial": "commercial",
    "商圈": "commercial",
    "office": "office",
    "楼宇": "office",
    "other": "other",
    "其他": "other",
}
POINT_KINDS = {
    "camera": "camera",
    "摄像头": "camera",
    "监控": "camera",
    "sensor": "sensor",
    "传感器": "sensor",
}
STATUSES = {
    "online": "online",
    "在线": "online",
    "offline": "offline",
    "离线": "offline",
    "fault": "fault",
    "故障": "fault",
}


def _nonnegative(value: Any) -> str | None:
    return "不能为负数" if value < 0 else None


def _at_most(characters: int) -> Any:
    """The column's width in the database: longer text is the file's error, not a 500."""

    def check(value: str) -> str | None:
        return (
            f"最长 {characters} 个字符，此处有 {len(value)} 个" if len(value) > characters else None
        )

    return check


def _in_range(low: float, high: float, high_inclusive: bool = True) -> Any:
    def check(value: float) -> str | None:
        ok = low <= value <= high if high_inclusive else low <= value < high
        return None if ok else f"应在 {low}–{high} 之间，实为 {value}"

    return check


GRID_FIELDS = (
    TargetField("code", ("code", "grid_code", "编码", "网格编码", "编号", "adcode"), required=True),
    TargetField("name", ("name", "名称", "网格名称", "Name", "NAME"), required=True),
    TargetField("parent", ("parent_code", "parent", "上级编码", "父编码")),
    TargetField("kind", ("kind", "类型", "网格类型"), choice(KINDS)),
    TargetField("households", ("households", "户数"), int_value, check=_nonnegative),
    TargetField("population", ("population", "人口", "人口数"), int_value, check=_nonnegative),
)
BUILDING_FIELDS = (
    TargetField(
        "code",
        ("code", "building_code", "编码", "楼栋编码", "编号", "id", "osm_id"),
        check=_at_most(64),
    ),
    TargetField("name", ("name", "名称", "楼栋名称", "Name")),
    TargetField("address", ("address", "地址", "addr")),
    TargetField(
        "floors", ("floors", "层数", "building:levels", "levels"), int_value, check=_nonnegative
    ),
    TargetField("households", ("households", "户数"), int_value, check=_nonnegative),
    TargetField("use", ("use", "用途", "building"), check=_at_most(32)),
)
POINT_FIELDS = (
    TargetField(
        "code", ("code", "编码", "点位编码", "编号", "id"), required=True, check=_at_most(64)
    ),
    TargetField("name", ("name", "名称", "点位名称", "Name")),
    TargetField("kind", ("kind", "类型"), choice(POINT_KINDS)),
    TargetField(
        "heading_deg",
        ("heading_deg", "heading", "朝向", "方向"),
        float_value,
        check=_in_range(0, 360, high_inclusive=False),
    ),
    TargetField("fov_deg", ("fov_deg", "fov", "视角"), float_value, check=_in_range(0.1, 360)),
    TargetField(
        "range_m", ("range_m", "range", "距离", "视距"), float_value, check=_in_range(0.1, 10000)
    ),
    TargetField("status", ("status", "状态"), choice(STATUSES)),
)


@dataclass(frozen=True)
class ImportOptions:
    crs: str | None = None
    fields: dict[str, str | None] | None = None
    repair: bool = False
    dry_run: bool = False
    replace: bool = False
    actor: str = "cli"
    draft: str | None = None  # grids only: load into a new draft of this name, not activated
    require_clean: bool = False  # grids only: refuse to activate when the coverage check errs


def _new_report(source: SourceLayer, kind: str, options: ImportOptions) -> ImportReport:
    return ImportReport(
        file=source.path.name,
        kind=kind,
        format=source.format,
        features=len(source),
        encoding=source.encoding,
        notes=list(source.notes),
        dry_run=options.dry_run,
    )


def _reject_if_errors(report: ImportReport) -> None:
    if report.errors:
        raise ImportRejected(report)


def _source_crs(source: SourceLayer, options: ImportOptions, report: ImportReport) -> str | None:
    if options.crs:
        label = normalise_crs(options.crs)
        if source.crs and crs_label(parse_crs(source.crs)) != label:
            report.notes.append(f"文件声明坐标系 {source.crs}，按 --crs 指定的 {label} 解读")
        return label
    if source.crs:
        return crs_label(parse_crs(source.crs))
    report.errors.append(
        ImportIssue(None, None, "文件没有声明坐标系，请用 --crs 指定（如 EPSG:4490、EPSG:4549）")
    )
    return None


def prepare_geometries(
    source: SourceLayer,
    options: ImportOptions,
    report: ImportReport,
    codes: list[str | None],
    polygonal: bool,
) -> np.ndarray:
    """Validate (and, if asked, repair) geometries, then reproject to WGS84."""
    crs = _source_crs(source, options, report)
    report.crs = crs
    geometries = np.array(
        [shapely.force_2d(g) if g is not None else None for g in source.geometries], dtype=object
    )
    problems = (
        validity.polygon_problems(geometries) if polygonal else validity.point_problems(geometries)
    )
    for problem in problems:
        code = codes[problem.index] if problem.index < len(codes) else None
        if problem.repairable and options.repair:
            before = geometries[problem.index]
            geometries[problem.index] = validity.repair(before)
            report.repaired.append(
                {"row": problem.index + 1, "code": code, "reason": problem.reason}
            )
        else:
            hint = "（可用 --repair 修复并报告）" if problem.repairable else ""
            report.errors.append(
                ImportIssue(problem.index + 1, "geometry", problem.reason + hint, code)
            )
    if report.errors or crs is None:
        return geometries
    converted = transform(geometries, crs, WGS84)
    range_problem = validity.coordinate_range_problem(converted, crs)
    if range_problem:
        report.errors.append(ImportIssue(None, "geometry", range_problem))
        return converted
    if polygonal:
        converted = np.array([validity.as_multipolygon(g) for g in converted], dtype=object)
        for index in np.flatnonzero(~shapely.is_valid(converted)):
            # Valid in the source CRS, invalid after reprojection: a sliver at survey precision.
            reason = shapely.is_valid_reason(converted[index])
            if options.repair:
                converted[index] = validity.repair(converted[index])
                report.repaired.append(
                    {"row": int(index) + 1, "code": codes[index], "reason": f"投影后无效：{reason}"}
                )
            else:
                report.errors.append(
                    ImportIssue(
                        int(index) + 1,
                        "geometry",
                        f"转换到 WGS84 后几何无效：{reason}（可用 --repair）",
                        codes[index],
                    )
                )
        if report.repaired:
            _measure_repairs(source, crs, report, converted)
    else:
        converted = np.array([validity.as_point(g) for g in converted], dtype=object)
    return converted


def _measure_repairs(
    source: SourceLayer, crs: str, report: ImportReport, converted: np.ndarray
) -> None:
    for entry in report.repaired:
        index = entry["row"] - 1
        original = transform(shapely.force_2d(source.geometries[index]), crs, WGS84)
        before, after = areas_m2(np.array([original, converted[index]]))
        entry["area_before_m2"] = round(float(before), 2)
        entry["area_after_m2"] = round(float(after), 2)


def _duplicate_codes(codes: list[str | None], report: ImportReport) -> None:
    first_row: dict[str, int] = {}
    for index, code in enumerate(codes):
        if code is None:
            continue
        if code in first_row:
            report.errors.append(
                ImportIssue(index + 1, "code", f"编码与第 {first_row[code]} 个要素重复", code)
            )
        else:
            first_row[code] = index + 1


def import_grids(
    engine: Engine, source: SourceLayer, level: str, options: ImportOptions
) -> ImportReport:
    report = _new_report(source, "grids", options)
    report.level = level
    _check_exported_level(source, level, report)
    mapped = map_rows(
        source.fields, len(source), GRID_FIELDS, options.fields or {}, source.path.name
    )
    report.columns = mapped.columns
    report.errors += mapped.issues
    _reject_unusable(report, mapped.rows)
    codes = [row["code"] for row in mapped.rows]
    geometries = prepare_geometries(source, options, report, codes, polygonal=True)
    _duplicate_codes(codes, report)
    with engine.connect() as connection:
        levels = {
            r.name: r
            for r in connection.execute(text("SELECT * FROM grid_level ORDER BY rank")).all()
        }
        if level not in levels:
            report.errors.append(
                ImportIssue(None, "level", f"没有名为 {level} 的层级（现有：{', '.join(levels)}）")
            )
            raise ImportRejected(report)
        active = active_or_none(connection)
        existing = grids_in_generation(connection, active) if active is not None else {}
    this_level = levels[level]
    parent_level = next(
        (
            lv
            for lv in levels.values()
            if lv.rank < this_level.rank
            and lv.rank == max(x.rank for x in levels.values() if x.rank < this_level.rank)
        ),
        None,
    )
    rows = _grid_rows(mapped.rows, geometries, level, this_level, parent_level, existing, report)
    _reject_if_errors(report)

    old_at_level = {c: g for c, g in existing.items() if g.level == level}
    changed = [
        row for row in rows if row.code not in existing or not row.same_as(existing[row.code])
    ]
    report.created = sum(1 for row in rows if row.code not in existing)
    report.updated = len(changed) - report.created
    report.unchanged = len(rows) - len(changed)
    removed = set(old_at_level) - {row.code for row in rows} if options.replace else set()
    report.removed = len(removed)
    orphans = [g for g in existing.values() if g.parent_code in removed]
    for orphan in orphans[:50]:
        report.errors.append(
            ImportIssue(
                None,
                "parent",
                f"--replace 会删除其上级 {orphan.parent_code}，下级网格 {orphan.code} 将失去上级",
                orphan.code,
            )
        )
    _reject_if_errors(report)
    if options.dry_run or not (changed or removed):
        if not options.dry_run:
            report.notes.append("与当前版本相同，未创建新版本")
        return report
    with engine.begin() as connection:
        lock_generations(connection)
        if active_or_none(connection) != active:
            raise ImportRejected(_concurrent(report))
        report.generation = publish(
            connection,
            changed=changed,
            removed=removed,
            actor=options.actor,
            activate_now=False,
            description=f"导入 {source.path.name}（{level}，新增 {report.created}，修改 {report.updated}，删除 {report.removed}）",
        )
        if options.draft is None:
            _gate_and_go_live(connection, report, options, existing, changed, removed)
        audit.record(
            connection,
            options.actor,
            "import.grids",
            "generation",
            str(report.generation),
            {
                "file": source.path.name,
                "level": level,
                "created": report.created,
                "updated": report.updated,
                "removed": report.removed,
            },
        )
        if options.draft is not None:
            if active is None:
                raise ImportRejected(_no_base(report))
            report.draft_id = register_draft(
                connection, report.generation, active, options.draft, options.actor, "import"
            )
    return report


def _gate_and_go_live(
    connection: Connection,
    report: ImportReport,
    options: ImportOptions,
    existing: dict[str, GridRow],
    changed: list[GridRow],
    removed: set[str],
) -> None:
    """An activating import passes the gate a publish passes: the coverage check (stored, and
    refusing on errors with --require-clean), then lineage and open events follow, in this
    transaction."""
    assert report.generation is not None
    check = run_check(connection, report.generation, CheckOptions())
    report.coverage = {
        "check_id": insert_check(connection, check, options.actor),
        **check["summary"],
    }
    if check["summary"]["errors"] and options.require_clean:
        for kind in ERROR_KINDS:
            for finding in check[kind][:20]:
                report.errors.append(ImportIssue(None, "coverage", finding["message"], None))
        raise ImportRejected(report)
    lineage: list[tuple[str | None, str | None, str]] = [
        (None, row.code, "create") if row.code not in existing else (row.code, row.code, "redraw")
        for row in changed
        if row.code not in existing
        or not shapely.equals_exact(row.geom, existing[row.code].geom, tolerance=SAME_GEOMETRY_DEG)
    ]
    lineage += [(code, None, "delete") for code in sorted(removed)]
    report.events = go_live(connection, report.generation, lineage, options.actor)


def _no_base(report: ImportReport) -> ImportReport:
    report.errors.append(
        ImportIssue(None, None, "还没有生效的网格版本，草稿无从比较：请直接导入（不带草稿名）")
    )
    return report


def _check_exported_level(source: SourceLayer, level: str, report: ImportReport) -> None:
    """A wangge export carries a `level` column: it must agree with --level, then it is dropped."""
    values = source.fields.pop("level", None)
    if values is None:
        return
    for index, value in enumerate(values):
        if value not in (None, level):
            report.errors.append(
                ImportIssue(
                    index + 1,
                    "level",
                    f"要素层级为 {value}，与导入层级 {level} 不符（可先按层级筛选）",
                )
            )


def _reject_unusable(report: ImportReport, rows: list[dict]) -> None:
    """Stop early when the columns cannot be mapped or the file has no features."""
    if not rows and not report.errors:
        report.errors.append(ImportIssue(None, None, "文件中没有要素"))
    if not rows:
        raise ImportRejected(report)


def _concurrent(report: ImportReport) -> ImportReport:
    report.errors.append(ImportIssue(None, None, "导入期间网格版本已被他人更新，请重试"))
    return report


def _grid_rows(
    rows, geometries, level, this_level, parent_level, existing, report
) -> list[GridRow]:
    parents = {
        c: g
        for c, g in existing.items()
        if parent_level is not None and g.level == parent_level.name
    }
    parent_tree = shapely.STRtree([g.geom for g in parents.values()]) if parents else None
    parent_codes = list(parents)
    result = []
    for index, (row, geom) in enumerate(zip(rows, geometries, strict=True)):
        code = row["code"]
        if code is None:
            continue
        parent = row["parent"]
        if parent_level is None:
            if parent:
                report.errors.append(
                    ImportIssue(index + 1, "parent", f"{level} 是最高层级，不应有上级", code)
                )
        else:
            parent = parent or _infer_parent(
                code, geom, parents, parent_tree, parent_codes, this_level
            )
            if parent is None:
                report.errors.append(
                    ImportIssue(
                        index + 1,
                        "parent",
                        f"找不到上级（{parent_level.name}）网格：请提供上级编码字段，或先导入上级网格",
                        code,
                    )
                )
            elif parent not in parents:
                report.errors.append(
                    ImportIssue(
                        index + 1,
                        "parent",
                        f"上级编码 {parent} 不是当前版本中的 {parent_level.name} 网格",
                        code,
                    )
                )

        problem = code_problem(code, parent if parent in parents else None, this_level)
        if problem:
            report.errors.append(ImportIssue(index + 1, "code", problem, code))
        result.append(
            GridRow(
                code,
                row["name"],
                level,
                row["kind"] or "other",
                parent,
                row["households"],
                row["population"],
                row["attributes"],
                geom,
            )
        )
    return result


def _infer_parent(code, geom, parents, tree, parent_codes, this_level) -> str | None:
    """No parent column: the code prefix if it names a parent, else the parent covering the grid."""
    if this_level.code_extends_parent:
        for length in range(len(code) - 1, 0, -1):
            if code[:length] in parents:
                return str(code[:length])
    if tree is None or geom is None or shapely.is_empty(geom):
        return None
    hits = tree.query(shapely.point_on_surface(geom), predicate="within")
    return parent_codes[int(hits[0])] if len(hits) else None


def import_buildings(engine: Engine, source: SourceLayer, options: ImportOptions) -> ImportReport:
    return _upsert_layer(
        engine,
        source,
        options,
        "buildings",
        "building",
        BUILDING_FIELDS,
        polygonal=True,
        defaults={},
    )


def import_points(engine: Engine, source: SourceLayer, options: ImportOptions) -> ImportReport:
    return _upsert_layer(
        engine,
        source,
        options,
        "points",
        "monitoring_point",
        POINT_FIELDS,
        polygonal=False,
        defaults={"kind": "camera", "status": "online"},
    )


def _upsert_layer(
    engine, source, options, kind, table, targets, polygonal, defaults
) -> ImportReport:
    report = _new_report(source, kind, options)
    mapped = map_rows(source.fields, len(source), targets, options.fields or {}, source.path.name)
    report.columns = mapped.columns
    report.errors += mapped.issues
    _reject_unusable(report, mapped.rows)
    for row in mapped.rows:
        for name, default in defaults.items():
            row[name] = row[name] if row[name] is not None else default
    if mapped.columns.get("code") is None:
        # No id column: codes from the file name and feature number, stable across re-imports.
        stem = Path(source.path.name).stem
        for index, row in enumerate(mapped.rows, start=1):
            row["code"] = f"{stem}-{index}"
        report.notes.append(f"文件没有编码字段，已按“{stem}-序号”生成编码")
    codes = [row["code"] for row in mapped.rows]
    geometries = prepare_geometries(source, options, report, codes, polygonal=polygonal)
    _duplicate_codes(codes, report)
    _reject_if_errors(report)
    names = [t.name for t in targets]
    with engine.connect() as connection, connection.begin() as transaction:
        counts = _stage_and_upsert(connection, table, names, mapped.rows, geometries)
        report.created, report.updated, report.unchanged = counts
        if options.dry_run:
            transaction.rollback()
            return report
        audit.record(
            connection,
            options.actor,
            f"import.{kind}",
            table,
            None,
            {"file": source.path.name, "created": report.created, "updated": report.updated},
        )
    return report


def _stage_and_upsert(
    connection: Connection,
    table: str,
    names: list[str],
    rows: list[dict],
    geometries: np.ndarray,
) -> tuple[int, int, int]:
    """COPY into a temporary table, count what changes, then INSERT … ON CONFLICT only those."""
    columns = [*names, "attributes", "geom"]
    connection.execute(
        text(f"CREATE TEMP TABLE incoming (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DROP")
    )
    copy_rows(
        connection,
        "incoming",
        columns,
        (
            [row[n] for n in names] + [row["attributes"], geom]
            for row, geom in zip(rows, geometries, strict=True)
        ),
    )
    plain = [c for c in columns if c not in ("code", "geom")]
    differs = " OR ".join(
        [f"i.{c} IS DISTINCT FROM t.{c}" for c in plain]
        + [
            f"(NOT ST_OrderingEquals(i.geom, t.geom) AND ST_HausdorffDistance(i.geom, t.geom) > {SAME_GEOMETRY_DEG})"
        ]
    )
    connection.execute(
        text(
            "CREATE TEMP TABLE incoming_state ON COMMIT DROP AS SELECT i.code, CASE "
            f"WHEN t.code IS NULL THEN 'created' WHEN {differs} THEN 'updated' ELSE 'unchanged' END AS state "
            f"FROM incoming i LEFT JOIN {table} t ON t.code = i.code"
        )
    )
    counts: dict[str, int] = dict(
        connection.execute(text("SELECT state, count(*) FROM incoming_state GROUP BY state")).all()
    )
    listed = ", ".join(columns)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c != "code")
    connection.execute(
        text(
            f"INSERT INTO {table} ({listed}) SELECT {listed} FROM incoming i "
            "WHERE EXISTS (SELECT 1 FROM incoming_state s WHERE s.code = i.code AND s.state <> 'unchanged') "
            f"ON CONFLICT (code) DO UPDATE SET {updates}, updated_at = now()"
        )
    )
    return counts.get("created", 0), counts.get("updated", 0), counts.get("unchanged", 0)


def run_import(
    engine: Engine, kind: str, source: SourceLayer, options: ImportOptions, level: str | None = None
) -> ImportReport:
    """Import `source` as grids (of `level`), buildings or points."""
    if kind == "grids":
        if level is None:
            raise ValueError("导入网格需要 level")
        return import_grids(engine, source, level, options)
    if kind == "buildings":
        return import_buildings(engine, source, options)
    return import_points(engine, source, options)
