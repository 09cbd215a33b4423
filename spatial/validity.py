"""Geometry checks for imported features: what is wrong, where, and an optional repair.

Nothing is dropped or altered silently: a check returns a reason naming the place
(shapely's is_valid_reason gives the coordinates of e.g. a self-intersection), and a repair
returns the repaired geometry so the caller can report the change in area.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Point

POLYGONAL = ("Polygon", "MultiPolygon")


@dataclass(frozen=True)
class GeometryProblem:
    index: int
    reason: str
    repairable: bool


def polygon_problems(geometries: np.ndarray) -> list[GeometryProblem]:
    """Problems of each (Multi)Polygon: missing, empty, wrong type or invalid (with where)."""
    problems = []
    for index, geometry in enumerate(geometries):
        if geometry is None or shapely.is_empty(geometry):
            problems.append(GeometryProblem(index, "缺少几何（空要素）", False))
        elif geometry.geom_type not in POLYGONAL:
            problems.append(
                GeometryProblem(
                    index, f"应为面（Polygon/MultiPolygon），实为 {geometry.geom_type}", False
                )
            )
        elif not geometry.is_valid:
            problems.append(
                GeometryProblem(index, f"几何无效：{shapely.is_valid_reason(geometry)}", True)
            )
    return problems


def point_problems(geometries: np.ndarray) -> list[GeometryProblem]:
    problems = []
    for index, geometry in enumerate(geometries):
        if geometry is None or shapely.is_empty(geometry):
            problems.append(GeometryProblem(index, "缺少几何（空要素）", False))
        elif geometry.geom_type == "MultiPoint" and len(geometry.geoms) == 1:
            continue
        elif geometry.geom_type != "Point":
            problems.append(
                GeometryProblem(index, f"应为点（Point），实为 {geometry.geom_type}", False)
            )
    return problems


def as_point(geometry: shapely.Geometry) -> Point:
    return geometry if geometry.geom_type == "Point" else geometry.geoms[0]


def as_multipolygon(geometry: shapely.Geometry) -> MultiPolygon:
    """Polygon → MultiPolygon; polygonal parts of a collection → MultiPolygon."""
    if geometry.geom_type == "MultiPolygon":
        return geometry
    if geometry.geom_type == "Polygon":
        return MultiPolygon([geometry])
    parts = [p for p in shapely.get_parts(geometry) if p.geom_type in POLYGONAL]
    polygons = [q for p in parts for q in (p.geoms if p.geom_type == "MultiPolygon" else [p])]
    return MultiPolygon(polygons)


def repair(geometry: shapely.Geometry) -> MultiPolygon:
    """Make an invalid polygon valid, keeping only polygonal parts (a bow-tie becomes two)."""
    fixed = shapely.make_valid(geometry, method="structure", keep_collapsed=False)
    return as_multipolygon(fixed)


def coordinate_range_problem(geometries: np.ndarray, crs_label: str) -> str | None:
    """Why WGS84 coordinates cannot be right (projected metres, swapped axes), or None."""
    valid = np.array([g for g in geometries if g is not None and not shapely.is_empty(g)])
    if len(valid) == 0:
        return None
    xmin, ymin, xmax, ymax = shapely.total_bounds(valid)
    in_china_swapped = xmin >= 3 and xmax <= 54 and ymin >= 73 and ymax <= 136
    if in_china_swapped:
        return (
            f"坐标疑似经纬度颠倒（x {xmin:.3f}..{xmax:.3f} 像纬度，y {ymin:.3f}..{ymax:.3f} 像经度）："
            "请交换经度、纬度列，或检查坐标系轴序"
        )
    if xmin < -180 or xmax > 180 or ymin < -90 or ymax > 90:
        return (
            f"按 {crs_label} 解读时坐标超出经纬度范围（x {xmin:.0f}..{xmax:.0f}，y {ymin:.0f}..{ymax:.0f}），"
            "看起来是投影坐标（米）：请用 --crs 指定，如苏州 CGCS2000 高斯-克吕格 3 度带 EPSG:4549"
        )
    return None
