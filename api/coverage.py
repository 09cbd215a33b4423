"""Run coverage checks on a generation: load from PostGIS, check in shapely, store the report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np
import shapely
from shapely.geometry import mapping
from sqlalchemy import Connection, Engine

from api.codes import code_problem
from api.db import audit, draft_grids
from api.db import checks as check_rows
from api.db import drafts as draft_rows
from api.db.catalogue import grid_levels
from api.db.indexes import generation_grids
from api.drafts.versions import compose_lineage
from spatial.coverage import Cameras, CheckOptions, GridSet, check, to_wgs84

KIND_LABELS = {
    "invalid_geometries": "无效几何",
    "overlaps": "重叠",
    "gaps": "空隙/缺口",
    "invalid_edges": "共用边不一致",
    "outside_parent": "超出上级",
    "orphan_grids": "上级缺失的网格",
    "orphan_buildings": "不在网格内的楼栋",
    "split_buildings": "跨网格楼栋",
    "households_out_of_band": "户数超出范围",
    "missing_roles": "缺少人员角色",
    "no_camera": "无监控点网格",
    "allowed_gaps": "允许的空缺",
    "code_rule": "编码不合规则",
}
FINDING_KINDS = (
    "invalid_geometries",
    "overlaps",
    "gaps",
    "allowed_gaps",
    "invalid_edges",
    "outside_parent",
    "orphan_grids",
    "orphan_buildings",
    "split_buildings",
    "code_rule",
    "households_out_of_band",
    "missing_roles",
    "no_camera",
)


def _wkb(rows: Sequence[Any]) -> np.ndarray:
    return np.asarray(shapely.from_wkb([bytes(r.wkb) for r in rows]), dtype=object)


def load_grids(connection: Connection, generation: int) -> GridSet:
    rows = generation_grids(connection, generation)
    return GridSet(
        [r.code for r in rows],
        [r.name for r in rows],
        [r.level for r in rows],
        [r.parent_code for r in rows],
        _wkb(rows),
        [r.households for r in rows],
    )


def load_options(connection: Connection, options: CheckOptions) -> CheckOptions:
    """Fill in the catalogue-driven parts: household bands, required roles, roles present."""
    for level in grid_levels(connection):
        if level.households_min is not None or level.households_max is not None:
            options.households_band.setdefault(
                level.name, (level.households_min, level.households_max)
            )
    for level_name, label in check_rows.required_roles(connection):
        options.required_roles.setdefault(level_name, []).append(label)
    for grid_code, label in check_rows.roles_present(connection):
        options.roles_present.setdefault(grid_code, set()).add(label)
    return options


def code_problems(connection: Connection, grids: GridSet) -> dict[str, str]:
    """Each grid whose code breaks its level's rule (api/codes.py, as an import decides)."""
    levels = {level.name: level for level in grid_levels(connection)}
    problems = {}
    for code, level, parent in zip(grids.codes, grids.levels, grids.parents, strict=True):
        problem = code_problem(code, parent, levels[level]) if level in levels else None
        if problem:
            problems[code] = problem
    return problems


def pending_recodes(connection: Connection, generation: int) -> list[tuple[str, str]]:
    """(old, new) codes an open draft of `generation` recoded: their staff follow on publish."""
    draft_id = draft_grids.open_draft_of(connection, generation)
    if draft_id is None:
        return []
    steps = [
        [tuple(step) for step in (edit or [])]
        for edit in draft_rows.live_lineages(connection, draft_id)
    ]
    final = set(draft_grids.codes_in(connection, generation))
    return [
        (old, new)
        for old, new, relation in compose_lineage(steps, [], final)
        if relation == "recode" and old and new
    ]


def load_buildings(connection: Connection) -> tuple[list[str], np.ndarray]:
    rows = check_rows.building_footprints(connection)
    return [r.code for r in rows], _wkb(rows)


def load_cameras(connection: Connection) -> Cameras:
    rows = check_rows.online_cameras(connection)
    return Cameras(
        [r.code for r in rows],
        _wkb(rows),
        np.array([r.heading_deg for r in rows], dtype=float),
        np.array([r.fov_deg for r in rows], dtype=float),
        np.array([r.range_m for r in rows], dtype=float),
    )


def _serialisable(report: dict[str, Any]) -> dict[str, Any]:
    for kind in (*FINDING_KINDS, "camera_coverage"):
        for finding in report.get(kind, []):
            geometry = finding.get("geometry")
            finding["geometry"] = (
                mapping(shapely.set_precision(geometry, 1e-9)) if geometry is not None else None
            )
    return report


def run_check(connection: Connection, generation: int, options: CheckOptions) -> dict[str, Any]:
    """The report for one generation, geometries as GeoJSON in WGS84."""
    grids = load_grids(connection, generation)
    options.code_problems = code_problems(connection, grids)
    options = load_options(connection, options)
    for old, new in pending_recodes(connection, generation):  # staff follow their grid's recode
        options.roles_present.setdefault(new, set()).update(options.roles_present.get(old, set()))
    report = check(
        grids,
        options,
        load_buildings(connection),
        load_cameras(connection),
    )
    report = _serialisable(to_wgs84(report))
    report["generation"] = generation
    report["level"] = options.level
    report["parameters"] = {
        k: v
        for k, v in asdict(options).items()
        if k
        in (
            "level",
            "gap_width_m",
            "min_gap_area_m2",
            "min_overlap_area_m2",
            "min_outside_area_m2",
            "min_split_share",
            "camera_level",
        )
    }
    report["parameters"]["allowed_gaps"] = len(options.allowed_gaps)
    report["parameters"]["outline"] = options.outline is not None
    return report


def store_check(engine: Engine, report: dict[str, Any], actor: str) -> int:
    with engine.begin() as connection:
        return insert_check(connection, report, actor)


def insert_check(connection: Connection, report: dict[str, Any], actor: str) -> int:
    """Store a report (in the caller's transaction) and return its id."""
    check_id = check_rows.insert_report(connection, report, actor)
    audit.record(
        connection, actor, "coverage.check", "coverage_check", str(check_id), report["summary"]
    )
    return check_id


def find_check(connection: Connection, check_id: int) -> dict[str, Any] | None:
    row = check_rows.stored_report(connection, check_id)
    if row is None:
        return None
    return {
        "id": row.id,
        "created_at": row.created_at.isoformat(),
        "created_by": row.created_by,
        **row.report,
    }


def problems_geojson(report: dict[str, Any]) -> dict[str, Any]:
    """Every finding with a place, as one FeatureCollection (property `kind` says which list)."""
    features = []
    for kind in FINDING_KINDS:
        for number, finding in enumerate(report.get(kind, []), start=1):
            if finding.get("geometry") is None:
                continue
            properties = {k: v for k, v in finding.items() if k != "geometry"}
            features.append(
                {
                    "type": "Feature",
                    "id": f"{kind}-{number}",
                    "geometry": finding["geometry"],
                    "properties": {"kind": kind, **properties},
                }
            )
    return {
        "type": "FeatureCollection",
        "features": features,
        "check": report.get("id"),
        "generation": report.get("generation"),
    }


def propose_fix_draft(
    engine: Engine, generation: int, level: str | None, gap_width_m: float, actor: str
) -> dict[str, Any]:
    """Clean the generation's coverage into a new draft (never activated here)."""
    from api.db.versioning import active_or_none, grids_in_generation, lock_generations, publish
    from api.drafts.versions import register_draft
    from spatial.coverage import propose_fix
    from spatial.validity import as_multipolygon

    with engine.connect() as connection:
        grids = load_grids(connection, generation)
        rows = grids_in_generation(connection, generation)
    changed = propose_fix(grids, level, gap_width_m)
    if not changed:
        return {"draft": None, "draft_id": None, "changed": [], "message": "无需修复：覆盖已干净"}
    for code, geometry in changed.items():
        rows[code].geom = as_multipolygon(geometry)
    with engine.begin() as connection:
        lock_generations(connection)
        draft = publish(
            connection,
            changed=[rows[c] for c in sorted(changed)],
            removed=set(),
            actor=actor,
            activate_now=False,
            description=f"第 {generation} 版的覆盖修复建议（coverage_clean，{len(changed)} 个网格）",
        )
        audit.record(
            connection,
            actor,
            "coverage.fix",
            "generation",
            str(draft),
            {"from_generation": generation, "changed": sorted(changed)},
        )
        base = active_or_none(connection) or generation
        draft_id = register_draft(
            connection, draft, base, f"第 {generation} 版的覆盖修复建议", actor, "fix"
        )
    return {
        "draft": draft,
        "draft_id": draft_id,
        "changed": sorted(changed),
        "message": f"已生成草稿 {draft_id}（第 {draft} 版，未启用），修改 {len(changed)} 个网格",
    }
