"""Coverage checks: does every level partition its parent exactly ("区域全覆盖")?

Family by family (a parent and its children — and the roots, siblings without a parent, checked
against a known outer boundary when one is given), in metres (the CGCS2000 Gauss-Kruger zone of the
data), it finds invalid geometries, overlapping siblings, gaps (`parent − union(children)`:
holes inside the union and strips along the parent's edge, kept when at least `gap_width_m`
wide — twice the radius of the largest inscribed circle — and `min_gap_area_m2` large),
unmatched shared edges (shapely's coverage_invalid_edges, merged so one fault is one finding),
and children reaching outside their parent. Then buildings in no grid or split between grids,
households outside the level's band, missing staff roles, codes that break their level's rule (as
api/codes.py decides them), and camera field-of-view coverage.
Every finding carries the codes involved, its size and its geometry (returned in WGS84).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely

from spatial.coverage_attached import camera_sector, check_buildings, check_cameras
from spatial.coverage_report import (
    ERROR_KINDS,
    WARNING_KINDS,
    Cameras,
    CheckOptions,
    GridSet,
    finding,
    rounded,
)
from spatial.crs import WGS84, is_geographic, metric_crs_for, transform

__all__ = [
    "ERROR_KINDS",
    "WARNING_KINDS",
    "Cameras",
    "CheckOptions",
    "GridSet",
    "camera_sector",
    "check",
    "propose_fix",
    "to_wgs84",
]


def check(
    grids: GridSet,
    options: CheckOptions,
    buildings: tuple[list[str], np.ndarray] | None = None,
    cameras: Cameras | None = None,
    crs: str = WGS84,
) -> dict[str, Any]:
    """The whole report; geometries in findings are in metres until `to_wgs84` is applied.

    Input in WGS84 is measured in its Gauss-Kruger zone; input already in a projected CRS
    (metres) is measured as it is.
    """
    if is_geographic(crs):
        metric_crs = metric_crs_for(grids.geometries) if len(grids.geometries) else WGS84
        metric = transform(grids.geometries, crs, metric_crs)
    else:
        metric_crs, metric = crs, grids.geometries
    source_crs = crs
    report: dict[str, Any] = {kind: [] for kind in (*ERROR_KINDS, *WARNING_KINDS)}
    report.update(allowed_gaps=[], camera_coverage=[], metric_crs=metric_crs)
    position = {code: i for i, code in enumerate(grids.codes)}
    allowed = (
        transform(np.array(options.allowed_gaps, dtype=object), crs, metric_crs)
        if options.allowed_gaps
        else []
    )

    for bad in np.flatnonzero(~shapely.is_valid(metric)):
        report["invalid_geometries"].append(
            finding(
                shapely.get_point(shapely.boundary(metric[int(bad)]), 0),
                f"{grids.codes[int(bad)]} 几何无效：{shapely.is_valid_reason(metric[int(bad)])}",
                codes=[grids.codes[int(bad)]],
            )
        )
    outline = (
        shapely.make_valid(transform(np.array([options.outline], dtype=object), crs, metric_crs)[0])
        if options.outline is not None
        else None
    )
    for parent_code, members in sibling_families(grids, options.level):
        if parent_code is not None and parent_code not in position:
            for i in members:
                report["orphan_grids"].append(
                    finding(
                        shapely.point_on_surface(metric[i]),
                        f"{grids.codes[i]} 的上级 {parent_code} 不在本版本中",
                        codes=[grids.codes[i]],
                        parent_code=parent_code,
                    )
                )
        # Roots have no parent to fill: their gaps are measured against the outline, if known.
        parent = metric[position[parent_code]] if parent_code in position else None
        _check_family(
            parent_code,
            parent if parent is not None else outline,
            [grids.codes[i] for i in members],
            metric[members],
            options,
            allowed,
            report,
        )

    leaves = _leaves(grids, options.level)
    if buildings is not None and len(buildings[0]):
        check_buildings(
            buildings[0],
            transform(buildings[1], source_crs, metric_crs),
            [grids.codes[i] for i in leaves],
            metric[leaves],
            options,
            report,
        )
    for i, code in enumerate(grids.codes):
        if options.level is not None and grids.levels[i] != options.level:
            continue
        if code in options.code_problems:
            report["code_rule"].append(
                finding(
                    shapely.point_on_surface(metric[i]),
                    f"{grids.names[i]}（{code}）：{options.code_problems[code]}",
                    codes=[code],
                    parent_code=grids.parents[i],
                    level=grids.levels[i],
                )
            )
        low, high = options.households_band.get(grids.levels[i], (None, None))
        households = grids.households[i]
        if households is not None and (
            (low is not None and households < low) or (high is not None and households > high)
        ):
            report["households_out_of_band"].append(
                finding(
                    None,
                    f"{grids.names[i]}（{code}）户数 {households}，超出 {low}–{high}",
                    codes=[code],
                    households=households,
                    band=[low, high],
                )
            )
        missing = sorted(
            set(options.required_roles.get(grids.levels[i], []))
            - options.roles_present.get(code, set())
        )
        if missing:
            report["missing_roles"].append(
                finding(
                    None,
                    f"{grids.names[i]}（{code}）缺少：{'、'.join(missing)}",
                    codes=[code],
                    missing=missing,
                )
            )
    if cameras is not None:
        targets = [i for i, level in enumerate(grids.levels) if level == options.camera_level]
        check_cameras(
            cameras,
            source_crs,
            metric_crs,
            [grids.codes[i] for i in targets],
            metric[targets],
            report,
        )

    report["summary"] = {
        "errors": sum(len(report[k]) for k in ERROR_KINDS),
        "warnings": sum(len(report[k]) for k in WARNING_KINDS),
        "by_kind": {k: len(report[k]) for k in (*ERROR_KINDS, *WARNING_KINDS, "allowed_gaps")},
    }
    return report


OUTLINE = "外边界"


def sibling_families(grids: GridSet, level: str | None) -> list[tuple[str | None, list[int]]]:
    """Grids grouped by parent code (None for the roots), each group a set of siblings that
    must not overlap. Only groups whose members are at `level`, when given."""
    families: dict[str | None, list[int]] = {}
    for i, parent in enumerate(grids.parents):
        if level is None or grids.levels[i] == level:
            families.setdefault(parent, []).append(i)
    return sorted(families.items(), key=lambda item: (item[0] is not None, item[0] or ""))


def _leaves(grids: GridSet, level: str | None) -> list[int]:
    parents = {p for p in grids.parents if p}
    if level is not None:
        return [i for i, lv in enumerate(grids.levels) if lv == level]
    return [i for i, code in enumerate(grids.codes) if code not in parents]


def _check_family(
    parent_code: str | None,
    parent: shapely.Geometry | None,
    codes: list[str],
    children: np.ndarray,
    options: CheckOptions,
    allowed: Any,
    report: dict[str, Any],
) -> None:
    overlaps = []
    tree = shapely.STRtree(children)
    left, right = tree.query(children, predicate="intersects")
    pairs = left < right
    left, right = left[pairs], right[pairs]
    if len(left):
        shared = shapely.intersection(children[left], children[right])
        areas = shapely.area(shared)
        for a, b, geometry, area in zip(left, right, shared, areas, strict=True):
            if area >= options.min_overlap_area_m2:
                overlaps.append(geometry)
                report["overlaps"].append(
                    finding(
                        geometry,
                        f"{codes[a]} 与 {codes[b]} 重叠 {area:.2f} 平方米",
                        codes=[codes[a], codes[b]],
                        parent_code=parent_code,
                        area_m2=rounded(area),
                    )
                )

    _check_edges(codes, children, overlaps, parent_code, options, report)
    if parent is None:
        return  # roots without a known outline: overlaps and edges only
    uncovered = shapely.difference(parent, shapely.union_all(children))
    for part in shapely.get_parts(uncovered):
        if part.geom_type != "Polygon" or part.is_empty or part.area < options.min_gap_area_m2:
            continue
        width = 2.0 * shapely.length(shapely.maximum_inscribed_circle(part, 0.01))
        if width < options.gap_width_m:
            continue
        kind = "strip" if part.exterior.distance(parent.boundary) < 1e-6 else "hole"
        neighbours = [codes[i] for i in tree.query(part, predicate="dwithin", distance=0.01)]
        values = {
            "codes": sorted(neighbours),
            "parent_code": parent_code,
            "area_m2": rounded(part.area),
            "width_m": rounded(width),
            "kind": kind,
        }
        label = "上级边界内无下级覆盖的条带" if kind == "strip" else "下级之间的空洞"
        if any(
            shapely.area(shapely.intersection(part, enclave)) >= 0.9 * part.area
            for enclave in allowed
        ):
            report["allowed_gaps"].append(
                finding(part, f"{parent_code or OUTLINE} 内允许的飞地/空缺", **values)
            )
        else:
            report["gaps"].append(
                finding(
                    part,
                    f"{parent_code or OUTLINE} {label}：{part.area:.1f} 平方米，宽 {width:.2f} 米",
                    **values,
                )
            )

    outside = shapely.difference(children, parent)
    for code, part in zip(codes, outside, strict=True):
        area = shapely.area(part)
        if area >= options.min_outside_area_m2:
            report["outside_parent"].append(
                finding(
                    part,
                    f"{code} 超出{f'上级 {parent_code} 边界' if parent_code else OUTLINE} {area:.2f} 平方米",
                    codes=[code],
                    parent_code=parent_code,
                    area_m2=rounded(area),
                )
            )


def _check_edges(
    codes: list[str],
    children: np.ndarray,
    overlaps: list[shapely.Geometry],
    parent_code: str | None,
    options: CheckOptions,
    report: dict[str, Any],
) -> None:
    edges = shapely.coverage_invalid_edges(children, gap_width=options.edge_tolerance_m)
    flagged = [i for i, line in enumerate(edges) if line is not None and not shapely.is_empty(line)]
    if flagged:
        merged = shapely.line_merge(shapely.union_all(edges[flagged]))
        explained = shapely.buffer(shapely.union_all(overlaps), 0.05) if overlaps else None
        for piece in _connected(merged):
            if (
                explained is not None
                and shapely.length(shapely.intersection(piece, explained)) >= 0.5 * piece.length
            ):
                continue  # the edges of an overlap already reported
            involved = sorted(
                {codes[i] for i in flagged if shapely.distance(edges[i], piece) < 1e-6}
            )
            report["invalid_edges"].append(
                finding(
                    piece,
                    f"{'、'.join(involved)} 的共用边不一致（未对齐或 T 形连接），长 {piece.length:.2f} 米",
                    codes=involved,
                    parent_code=parent_code,
                    length_m=rounded(piece.length),
                )
            )


def _connected(lines: shapely.Geometry) -> list[shapely.Geometry]:
    """Group line parts that touch into one geometry each."""
    parts = list(shapely.get_parts(lines))
    groups: list[list[shapely.Geometry]] = []
    for part in parts:
        touching = [g for g in groups if any(shapely.distance(part, other) < 1e-6 for other in g)]
        merged = [part] + [p for g in touching for p in g]
        groups = [g for g in groups if g not in touching] + [merged]
    return [shapely.line_merge(shapely.union_all(group)) for group in groups]


def to_wgs84(report: dict[str, Any]) -> dict[str, Any]:
    """Findings' geometries from the metric zone back to WGS84 (in place)."""
    metric_crs = report["metric_crs"]
    for findings in report.values():
        if not isinstance(findings, list):
            continue
        for item in findings:
            geometry = item.get("geometry")
            if geometry is not None:
                item["geometry"] = transform(geometry, metric_crs, WGS84)
    return report


def propose_fix(
    grids: GridSet, level: str | None, gap_width_m: float
) -> dict[str, shapely.Geometry]:
    """Cleaned geometries (WGS84) for the children that change: snap near-coincident edges,
    give overlaps and gaps narrower than gap_width_m to the neighbour with the longest shared
    border (shapely's coverage_clean). Strips along a parent's outer edge are not filled.
    """
    metric_crs = metric_crs_for(grids.geometries)
    metric = transform(grids.geometries, WGS84, metric_crs)
    changed: dict[str, shapely.Geometry] = {}
    for _, members in sibling_families(grids, level):
        children = metric[members]
        if shapely.coverage_is_valid(children, gap_width=gap_width_m):
            continue
        cleaned = shapely.coverage_clean(children, gap_width=gap_width_m)
        for i, before, after in zip(members, children, cleaned, strict=True):
            if not shapely.equals_exact(before, after, tolerance=0.0):
                changed[grids.codes[i]] = transform(shapely.make_valid(after), metric_crs, WGS84)
    return changed
