"""Geometry for the address gazetteer, in lon/lat (WGS84) with a local metric scale.

Road intersections from named lines, points spread along a line / over a polygon / in a disc (the
samples a matched place hands to the grid shares), and moving a point by a bearing and distance.
Distances are metres on a local equirectangular scale: good to well under 1 % across a district.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import shapely
from shapely.geometry import Point
from shapely.geometry.base import BaseGeometry

METRES_PER_DEGREE_LAT = 110_574.0
METRES_PER_DEGREE_LON_EQUATOR = 111_320.0
INTERSECTION_CLUSTER_M = 60.0  # crossings of one pair of roads closer than this are one junction


def metres_per_degree(lat: float) -> tuple[float, float]:
    """(metres per degree of longitude, of latitude) at latitude `lat`."""
    return METRES_PER_DEGREE_LON_EQUATOR * math.cos(math.radians(lat)), METRES_PER_DEGREE_LAT


def move(lon: float, lat: float, bearing_deg: float, distance_m: float) -> tuple[float, float]:
    """The point `distance_m` from (lon, lat) towards `bearing_deg` (clockwise from north)."""
    per_lon, per_lat = metres_per_degree(lat)
    angle = math.radians(bearing_deg)
    return (
        lon + distance_m * math.sin(angle) / per_lon,
        lat + distance_m * math.cos(angle) / per_lat,
    )


def distance_m(lon_a: float, lat_a: float, lon_b: float, lat_b: float) -> float:
    per_lon, per_lat = metres_per_degree((lat_a + lat_b) / 2)
    return math.hypot((lon_a - lon_b) * per_lon, (lat_a - lat_b) * per_lat)


def samples_along(line: BaseGeometry, step_m: float = 25.0, limit: int = 200) -> np.ndarray:
    """Points every `step_m` along every part of a (Multi)LineString (at most `limit`), as (n, 2)."""
    parts = [p for p in shapely.get_parts(line) if not p.is_empty]
    if not parts:
        return np.empty((0, 2))
    lat = float(np.mean([p.centroid.y for p in parts]))
    per_lon, per_lat = metres_per_degree(lat)
    scale = np.array([per_lon, per_lat])
    lengths = []
    for part in parts:
        coords = np.asarray(part.coords) * scale
        lengths.append(float(np.hypot(*np.diff(coords, axis=0).T).sum()))
    total = sum(lengths) or 1.0
    step = max(step_m, total / limit)
    points: list[np.ndarray] = []
    for part, length in zip(parts, lengths, strict=True):
        count = max(1, int(length // step) + 1)
        fractions = (np.arange(count) + 0.5) / count
        points.append(
            shapely.get_coordinates(
                shapely.line_interpolate_point(part, fractions, normalized=True)
            )
        )
    return np.vstack(points)[:limit]


def samples_in_polygon(polygon: BaseGeometry, limit: int = 64) -> np.ndarray:
    """About `limit` points on a regular lattice inside a (Multi)Polygon (its interior point when
    the lattice misses it), as (n, 2)."""
    if polygon.is_empty:
        return np.empty((0, 2))
    minx, miny, maxx, maxy = polygon.bounds
    per_lon, per_lat = metres_per_degree((miny + maxy) / 2)
    width, height = (maxx - minx) * per_lon, (maxy - miny) * per_lat
    area = max(polygon.area * per_lon * per_lat, 1.0)
    step = math.sqrt(area / limit)
    xs = minx + (np.arange(0.5, max(width / step, 1.0)) * step) / per_lon
    ys = miny + (np.arange(0.5, max(height / step, 1.0)) * step) / per_lat
    grid_x, grid_y = np.meshgrid(xs, ys)
    points = shapely.points(grid_x.ravel(), grid_y.ravel())
    shapely.prepare(polygon)
    inside = points[shapely.contains(polygon, points)]
    if len(inside) == 0:
        return shapely.get_coordinates(polygon.representative_point())
    return shapely.get_coordinates(inside)[: limit * 2]


def samples_in_disc(lon: float, lat: float, radius_m: float, rings: int = 3) -> np.ndarray:
    """The centre and points on `rings` concentric rings out to `radius_m`, as (n, 2)."""
    per_lon, per_lat = metres_per_degree(lat)
    points = [(lon, lat)]
    for ring in range(1, rings + 1):
        radius = radius_m * ring / rings
        count = 6 * ring
        for k in range(count):
            angle = 2 * math.pi * k / count
            points.append(
                (lon + radius * math.sin(angle) / per_lon, lat + radius * math.cos(angle) / per_lat)
            )
    return np.array(points)


def shift(
    samples: np.ndarray, lon: float, lat: float, new_lon: float, new_lat: float
) -> np.ndarray:
    """Samples moved by the offset from (lon, lat) to (new_lon, new_lat)."""
    return samples + np.array([new_lon - lon, new_lat - lat])


def road_intersections(
    codes: Sequence[str], names: Sequence[str], lines: Sequence[BaseGeometry]
) -> dict[tuple[int, int], list[tuple[float, float]]]:
    """Where roads of different names cross: {(i, j) with i < j: [(lon, lat), …]} by road index,
    crossings of one pair closer than INTERSECTION_CLUSTER_M merged into their mean."""
    if not lines:
        return {}
    tree = shapely.STRtree(list(lines))
    left, right = tree.query(list(lines), predicate="intersects")
    found: dict[tuple[int, int], list[tuple[float, float]]] = {}
    for i, j in zip(left.tolist(), right.tolist(), strict=True):
        if i >= j or names[i] == names[j] or codes[i] == codes[j]:
            continue
        crossing = lines[i].intersection(lines[j])
        points = [
            (p.x, p.y) if isinstance(p, Point) else (p.centroid.x, p.centroid.y)
            for p in shapely.get_parts(crossing)
            if not p.is_empty
        ]
        if points:
            found[(i, j)] = _cluster(points)
    return found


def _cluster(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    groups: list[list[tuple[float, float]]] = []
    for point in points:
        for group in groups:
            if distance_m(*group[0], *point) < INTERSECTION_CLUSTER_M:
                group.append(point)
                break
        else:
            groups.append([point])
    return [(float(np.mean([p[0] for p in g])), float(np.mean([p[1] for p in g]))) for g in groups]
