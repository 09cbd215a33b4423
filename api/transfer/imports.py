"""Import grids, buildings and monitoring points: validate everything, then write in one transaction.

A grid import creates a new generation (the active one plus the file's changes) and activates
it, so history stays answerable. Buildings and monitoring points are upserted by code. Any
problem rejects the whole file with a report naming file, feature, field and reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import shapely
from sqlalchemy import Connection, Engine

from api.coverage import insert_check, run_check
from api.db import audit
from api.db.imports import grid_levels_by_name, stage_and_upsert
from api.db.versioning import active_or_none, grids_in_generation, lock_generations, publish
from api.drafts.publish import go_live
from api.drafts.versions import register_draft
from api.transfer.field_tables import BUILDING_FIELDS, GRID_FIELDS, POINT_FIELDS
from api.transfer.fields import TargetField, map_rows
from api.transfer.gazetteer import PLACE_KINDS, import_places
from api.transfer.geometry import prepare_geometries
from api.transfer.hierarchy import check_exported_level, duplicate_codes, grid_rows, level_above
from api.transfer.read import SourceLayer
from api.transfer.report import ImportIssue, ImportRejected, ImportReport
from spatial.coverage import ERROR_KINDS, CheckOptions
from spatial.editing import SAME_GEOMETRY_DEG, GridRow


@dataclass(frozen=True)
class ImportOptions:
    """How to read and write one file (the CLI's and the upload form's options)."""

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


def import_grids(
    engine: Engine, source: SourceLayer, level: str, options: ImportOptions
) -> ImportReport:
    """Grids of one `level` as a new generation: activated after the coverage gate, or a draft."""
    report = _new_report(source, "grids", options)
    report.level = level
    check_exported_level(source, level, report)
    mapped = map_rows(
        source.fields, len(source), GRID_FIELDS, options.fields or {}, source.path.name
    )
    report.columns = mapped.columns
    report.errors += mapped.issues
    _reject_unusable(report, mapped.rows)
    codes = [row["code"] for row in mapped.rows]
    geometries = prepare_geometries(
        source, report, codes, polygonal=True, crs_given=options.crs, repair=options.repair
    )
    duplicate_codes(codes, report)
    with engine.connect() as connection:
        levels = grid_levels_by_name(connection)
        if level not in levels:
            report.errors.append(
                ImportIssue(None, "level", f"没有名为 {level} 的层级（现有：{', '.join(levels)}）")
            )
            raise ImportRejected(report)
        active = active_or_none(connection)
        existing = grids_in_generation(connection, active) if active is not None else {}
    rows = grid_rows(
        mapped.rows, geometries, level, levels[level], level_above(levels, level), existing, report
    )
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


def _reject_unusable(report: ImportReport, rows: list[dict]) -> None:
    """Stop early when the columns cannot be mapped or the file has no features."""
    if not rows and not report.errors:
        report.errors.append(ImportIssue(None, None, "文件中没有要素"))
    if not rows:
        raise ImportRejected(report)


def _concurrent(report: ImportReport) -> ImportReport:
    report.errors.append(ImportIssue(None, None, "导入期间网格版本已被他人更新，请重试"))
    return report


def import_buildings(engine: Engine, source: SourceLayer, options: ImportOptions) -> ImportReport:
    """Building footprints, upserted by code."""
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
    """Monitoring points (cameras, sensors), upserted by code."""
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
    engine: Engine,
    source: SourceLayer,
    options: ImportOptions,
    kind: str,
    table: str,
    targets: tuple[TargetField, ...],
    polygonal: bool,
    defaults: dict[str, str],
) -> ImportReport:
    """Buildings or points: checked like grids, then upserted by code (no generations)."""
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
    geometries = prepare_geometries(
        source, report, codes, polygonal=polygonal, crs_given=options.crs, repair=options.repair
    )
    duplicate_codes(codes, report)
    _reject_if_errors(report)
    names = [t.name for t in targets]
    with engine.connect() as connection, connection.begin() as transaction:
        counts = stage_and_upsert(connection, table, names, mapped.rows, geometries)
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


def run_import(
    engine: Engine, kind: str, source: SourceLayer, options: ImportOptions, level: str | None = None
) -> ImportReport:
    """Import `source` as grids (of `level`), buildings, points, or the gazetteer's roads,
    compounds, pois or house-numbers."""
    if kind in PLACE_KINDS:
        return import_places(
            engine,
            source,
            kind,
            crs=options.crs,
            fields=options.fields,
            repair=options.repair,
            dry_run=options.dry_run,
            actor=options.actor,
        )
    if kind == "grids":
        if level is None:
            raise ValueError("导入网格需要 level")
        return import_grids(engine, source, level, options)
    if kind == "buildings":
        return import_buildings(engine, source, options)
    return import_points(engine, source, options)
