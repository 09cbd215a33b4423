"""Geometry of an imported file: declared or given CRS, validity (repair if asked, measured), WGS84."""

from __future__ import annotations

import numpy as np
import shapely
from shapely.geometry import MultiLineString

from api.transfer.read import SourceLayer
from api.transfer.report import ImportIssue, ImportReport
from spatial import validity
from spatial.crs import WGS84, areas_m2, crs_label, normalise_crs, parse_crs, transform


def _source_crs(source: SourceLayer, crs_given: str | None, report: ImportReport) -> str | None:
    if crs_given:
        label = normalise_crs(crs_given)
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
    report: ImportReport,
    codes: list[str | None],
    *,
    polygonal: bool,
    crs_given: str | None,
    repair: bool,
    linear: bool = False,
) -> np.ndarray:
    """Validate (and, if `repair`, repair) geometries, then reproject to WGS84.

    `crs_given`: the CRS the caller says the file is in (overrides the file's own);
    `linear`: lines (roads), as MultiLineStrings; otherwise polygons or points.
    """
    crs = _source_crs(source, crs_given, report)
    report.crs = crs
    geometries = np.array(
        [shapely.force_2d(g) if g is not None else None for g in source.geometries], dtype=object
    )
    if linear:
        problems = _line_problems(geometries)
    elif polygonal:
        problems = validity.polygon_problems(geometries)
    else:
        problems = validity.point_problems(geometries)
    for row, reason in sorted(source.broken.items()):  # unbuildable: said as they are
        code = codes[row] if row < len(codes) else None
        report.errors.append(ImportIssue(row + 1, "geometry", reason, code))
    for problem in (p for p in problems if p.index not in source.broken):
        code = codes[problem.index] if problem.index < len(codes) else None
        if problem.repairable and repair:
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
        report.errors += _rows_out_of_range(converted, codes) or [
            ImportIssue(None, "geometry", range_problem)
        ]
        return converted
    if polygonal:
        converted = np.array([validity.as_multipolygon(g) for g in converted], dtype=object)
        for index in np.flatnonzero(~shapely.is_valid(converted)):
            # Valid in the source CRS, invalid after reprojection: a sliver at survey precision.
            reason = shapely.is_valid_reason(converted[index])
            if repair:
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
    elif linear:
        converted = np.array([_as_multilinestring(g) for g in converted], dtype=object)
    else:
        converted = np.array([validity.as_point(g) for g in converted], dtype=object)
    return converted


def _rows_out_of_range(converted: np.ndarray, codes: list[str | None]) -> list[ImportIssue]:
    """When only some features lie beyond longitude ±180 / latitude ±90 (a typo among good
    rows), an issue for each of them; [] when all do (the whole file is projected: said once)."""
    bounds = shapely.bounds(converted)
    present = ~np.isnan(bounds[:, 0])
    out = present & (
        (bounds[:, 0] < -180) | (bounds[:, 2] > 180) | (bounds[:, 1] < -90) | (bounds[:, 3] > 90)
    )
    if not out.any() or out.sum() == present.sum():
        return []
    return [
        ImportIssue(
            int(i) + 1,
            "geometry",
            f"坐标超出经纬度范围（x {bounds[i, 0]:.6g}，y {bounds[i, 1]:.6g}），其余要素都在范围内："
            "请检查该要素的坐标（是否录错、经纬度是否颠倒）",
            codes[i] if i < len(codes) else None,
        )
        for i in np.flatnonzero(out)
    ]


def _line_problems(geometries: np.ndarray) -> list[validity.GeometryProblem]:
    """Problems of each (Multi)LineString: missing, empty, wrong type or of no length."""
    problems = []
    for index, geometry in enumerate(geometries):
        if geometry is None or shapely.is_empty(geometry):
            problems.append(validity.GeometryProblem(index, "缺少几何（空要素）", False))
        elif geometry.geom_type not in ("LineString", "MultiLineString"):
            problems.append(
                validity.GeometryProblem(
                    index, f"应为线（LineString/MultiLineString），实为 {geometry.geom_type}", False
                )
            )
        elif geometry.length == 0:
            problems.append(validity.GeometryProblem(index, "线的长度为 0", False))
    return problems


def _as_multilinestring(geometry: shapely.Geometry) -> MultiLineString:
    if geometry.geom_type == "MultiLineString":
        return geometry
    return MultiLineString([geometry])


def _measure_repairs(
    source: SourceLayer, crs: str, report: ImportReport, converted: np.ndarray
) -> None:
    for entry in report.repaired:
        index = entry["row"] - 1
        original = transform(shapely.force_2d(source.geometries[index]), crs, WGS84)
        before, after = areas_m2(np.array([original, converted[index]]))
        entry["area_before_m2"] = round(float(before), 2)
        entry["area_after_m2"] = round(float(after), 2)
