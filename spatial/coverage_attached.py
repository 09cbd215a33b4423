"""What hangs on the grids, checked against them: buildings in no grid or split between grids,
and each grid's share inside the online cameras' fields of view."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import shapely
from shapely.geometry import Point, Polygon

from spatial.coverage_report import Cameras, CheckOptions, finding, rounded
from spatial.crs import transform


def check_buildings(
    codes: list[str],
    footprints: np.ndarray,
    grid_codes: list[str],
    grids: np.ndarray,
    options: CheckOptions,
    report: dict[str, Any],
) -> None:
    tree = shapely.STRtree(grids)
    inside, _ = tree.query(footprints, predicate="within")
    settled = np.zeros(len(footprints), dtype=bool)
    settled[inside] = True
    for b in np.flatnonzero(~settled):
        candidates = tree.query(footprints[b], predicate="intersects")
        area = footprints[b].area
        shares = {
            grid_codes[g]: shapely.area(shapely.intersection(footprints[b], grids[g])) / area
            for g in candidates
        }
        shares = {code: share for code, share in shares.items() if share >= options.min_split_share}
        if not shares:
            report["orphan_buildings"].append(
                finding(
                    footprints[b],
                    f"楼栋 {codes[b]} 不在任何网格内",
                    codes=[codes[b]],
                    area_m2=rounded(area),
                )
            )
        elif len(shares) > 1 or sum(shares.values()) < 0.99:
            text = "、".join(f"{c} {s:.0%}" for c, s in sorted(shares.items()))
            report["split_buildings"].append(
                finding(
                    footprints[b],
                    f"楼栋 {codes[b]} 跨网格：{text}",
                    codes=[codes[b], *sorted(shares)],
                    shares={c: round(s, 4) for c, s in shares.items()},
                    area_m2=rounded(area),
                )
            )


def camera_sector(point: Point, heading_deg: float, fov_deg: float, range_m: float) -> Polygon:
    """A camera's field of view in metres: a circular sector, heading clockwise from north."""
    if fov_deg >= 360:
        return point.buffer(range_m, 32)
    steps = max(math.ceil(fov_deg / 5.0), 2)
    angles = np.radians(
        np.linspace(heading_deg - fov_deg / 2, heading_deg + fov_deg / 2, steps + 1)
    )
    arc = np.column_stack([point.x + range_m * np.sin(angles), point.y + range_m * np.cos(angles)])
    return Polygon([(point.x, point.y), *map(tuple, arc)])


def check_cameras(
    cameras: Cameras,
    source_crs: str,
    metric_crs: str,
    codes: list[str],
    grids: np.ndarray,
    report: dict[str, Any],
) -> None:
    points = transform(cameras.points, source_crs, metric_crs)
    sectors = [
        camera_sector(p, h, f, r)
        for p, h, f, r in zip(
            points, cameras.heading_deg, cameras.fov_deg, cameras.range_m, strict=True
        )
    ]
    seen = shapely.union_all(sectors) if sectors else Polygon()
    counts = np.zeros(len(grids), dtype=int)
    if len(points):
        _, hit = shapely.STRtree(grids).query(points, predicate="intersects")
        np.add.at(counts, hit, 1)
    shares = shapely.area(shapely.intersection(grids, seen)) / shapely.area(grids)
    for code, grid, share, count in zip(codes, grids, shares, counts, strict=True):
        report["camera_coverage"].append(
            {
                "codes": [code],
                "share": round(float(share), 4),
                "cameras": int(count),
                "geometry": None,
                "message": f"{code} 监控覆盖 {share:.1%}（{count} 个点位）",
            }
        )
        if count == 0:
            report["no_camera"].append(finding(grid, f"{code} 内没有监控点", codes=[code]))
