"""Cleaning up after overlays of grids that share edges.

Differences and unions of neighbouring grids leave crumbs, zero-width spikes, hairline slivers
and the same vertex computed twice with different rounding. These functions drop the first
three and make the last one point, so that neighbours' edges keep matching exactly.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import shapely

from spatial.grids import GridRow

# Pieces smaller than this (square degrees, ~0.01 m²) are overlay noise, not area.
MIN_PIECE_DEG2 = 1e-12
# Pieces thinner than this (degrees, ~1 cm) are overlay or rounding slivers, not area.
MIN_WIDTH_DEG = 1e-7
# A drawn vertex this close to an existing vertex or edge is meant to be on it (degrees, ~10 cm):
# a map editor or a GeoJSON writer rounding to 6 decimals moves it by up to 7e-7 degrees.
SNAP_INPUT_DEG = 1e-6
# Vertices closer than this (degrees, ~0.1 µm) are one point computed twice.
VERTEX_EPS = 1e-12
# Crossing vertices are inserted into every edge this close (degrees, ~0.1 mm).
SNAP_DEG = 1e-9


def despiked(ring: shapely.LinearRing) -> list[tuple[float, float]]:
    """The ring without zero-width spikes (out and straight back), which overlays of nearly
    collinear edges leave behind; such a spike would never match a neighbour's edge."""
    points = [tuple(c) for c in shapely.get_coordinates(ring)[:-1]]
    changed = True
    while changed and len(points) > 3:
        changed = False
        for i in range(len(points)):
            (ax, ay), (bx, by), (cx, cy) = points[i - 1], points[i], points[(i + 1) % len(points)]
            out = (bx - ax, by - ay)
            back = (cx - bx, cy - by)
            length = max(np.hypot(*out), np.hypot(*back), 1e-300)
            width = abs(out[0] * back[1] - out[1] * back[0]) / length
            if width < SNAP_DEG and out[0] * back[0] + out[1] * back[1] < 0:
                del points[i]  # the spike's tip
                changed = True
                break
            if np.hypot(*back) < SNAP_DEG * 1e-3:
                del points[(i + 1) % len(points)]  # a duplicate left where a spike was
                changed = True
                break
    return [*points, points[0]]


def tidy(geometry: shapely.Geometry) -> shapely.Geometry:
    """Drop overlay crumbs: spikes, and parts and holes smaller than MIN_PIECE_DEG2."""
    polygons = []
    for part in shapely.get_parts(shapely.make_valid(geometry)):
        if part.geom_type == "Polygon" and part.area >= MIN_PIECE_DEG2:
            holes = [
                despiked(r) for r in part.interiors if shapely.Polygon(r).area >= MIN_PIECE_DEG2
            ]
            polygons.append(shapely.Polygon(despiked(part.exterior), holes))
        elif part.geom_type in ("MultiPolygon", "GeometryCollection"):
            polygons += list(shapely.get_parts(tidy(part)))
    if not polygons:
        return shapely.Polygon()
    return polygons[0] if len(polygons) == 1 else shapely.MultiPolygon(polygons)


def area(geometry: shapely.Geometry) -> float:
    return float(shapely.area(geometry))


def significant(geometry: shapely.Geometry) -> list[shapely.Geometry]:
    """The polygon parts that are real area: neither crumbs nor hairline slivers."""
    return [
        part
        for part in shapely.get_parts(tidy(geometry))
        if part.area >= MIN_PIECE_DEG2 and 2 * part.area / part.length >= MIN_WIDTH_DEG
    ]


def snapped_to(drawn: shapely.Geometry, nearby: list[shapely.Geometry]) -> shapely.Geometry:
    """A drawn outline with near-misses of the nearby grids' vertices and edges made exact."""
    if not nearby:
        return drawn
    snapped = shapely.snap(drawn, shapely.union_all([g.boundary for g in nearby]), SNAP_INPUT_DEG)
    return snapped if snapped.is_valid and not snapped.is_empty else drawn


def merge_near_duplicates(rows: dict[str, GridRow], touched: set[str]) -> None:
    """One coordinate for each point that overlays computed twice with different rounding.

    Two grids that should share a vertex may each get their own copy a few 1e-15 degrees
    apart; their edges then do not match. Untouched grids' vertices are kept as they are.
    """
    canonical: dict[tuple[int, int], tuple[float, float]] = {}
    ordered = [c for c in sorted(rows) if c not in touched] + sorted(touched)
    for code in ordered:
        for x, y in shapely.get_coordinates(rows[code].geom):
            canonical.setdefault((round(x / VERTEX_EPS), round(y / VERTEX_EPS)), (x, y))

    def find(x: float, y: float) -> tuple[float, float]:
        kx, ky = round(x / VERTEX_EPS), round(y / VERTEX_EPS)
        for dx in (0, -1, 1):
            for dy in (0, -1, 1):
                found = canonical.get((kx + dx, ky + dy))
                if (
                    found is not None
                    and abs(found[0] - x) <= VERTEX_EPS
                    and abs(found[1] - y) <= VERTEX_EPS
                ):
                    return found
        return (x, y)

    for code in sorted(touched):
        geometry = rows[code].geom
        coordinates = shapely.get_coordinates(geometry)
        merged = np.array([find(x, y) for x, y in coordinates])
        if not np.array_equal(merged, coordinates):
            rows[code].geom = tidy(shapely.set_coordinates(geometry, merged))


def vertices_inserted(
    rows: dict[str, GridRow], levels: Iterable[str], fresh: set[tuple[float, float]]
) -> dict[str, shapely.Geometry]:
    """New outlines of the grids (of these levels) whose edges pass through a fresh vertex,
    with that vertex inserted; grids that need no change are left out."""
    levels = set(levels)
    points = shapely.multipoints(sorted(fresh))
    changed = {}
    for code, row in sorted(rows.items()):
        # Edges must match within a level; a parent need not repeat its children's vertices.
        if row.level not in levels or row.geom.distance(points) > SNAP_DEG:
            continue
        snapped = shapely.snap(row.geom, points, SNAP_DEG)
        if not shapely.equals_exact(snapped, row.geom, 0.0) and snapped.is_valid:
            changed[code] = snapped
    return changed
