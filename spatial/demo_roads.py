"""The demo street's road network: arterials, collectors and local roads cut an outline into blocks.

All road lines are noded together and polygonised once per level, so neighbouring blocks share
identical edges. Everything here is in metres; `spatial.demo_street` names and converts the blocks.
"""

from __future__ import annotations

import math

import numpy as np
import shapely
from shapely.geometry import LineString, Polygon


def street_outline(cx: float, cy: float) -> Polygon:
    """About 3.3 km × 3.1 km; the west edge follows the lake shore."""
    half_w, half_h = 1650.0, 1560.0
    west = [
        (cx - half_w + 90 * math.sin(t / 520.0) + 40 * math.sin(t / 170.0 + 1.3), cy + half_h - t)
        for t in np.linspace(0, 2 * half_h, 40)
    ]
    south = [(cx - half_w + t, cy - half_h + 25 * math.sin(t / 400.0)) for t in (900.0, 2100.0)]
    east = [
        (cx + half_w + 30 * math.sin(t / 600.0), cy - half_h + t) for t in (0.0, 1500.0, 3120.0)
    ]
    north = [(cx + half_w - t, cy + half_h - 20 * math.sin(t / 500.0)) for t in (1200.0, 2400.0)]
    ring = [*west, *south, *east, *north]
    return shapely.make_valid(Polygon(ring)).buffer(0)


def _wavy_line(
    a: tuple[float, float], b: tuple[float, float], rng: np.random.Generator, amplitude: float
) -> LineString:
    ts = np.linspace(0.0, 1.0, 9)
    ax, ay = a
    bx, by = b
    nx, ny = -(by - ay), bx - ax
    length = math.hypot(nx, ny)
    nx, ny = nx / length, ny / length
    phase = rng.uniform(0, math.pi)
    offsets = amplitude * np.sin(ts * math.pi + phase) * np.sin(ts * math.pi)
    return LineString(
        [
            (ax + t * (bx - ax) + o * nx, ay + t * (by - ay) + o * ny)
            for t, o in zip(ts, offsets, strict=True)
        ]
    )


def _arterials(rng: np.random.Generator, outline: Polygon) -> list[LineString]:
    minx, miny, maxx, maxy = outline.bounds
    pad = 200.0
    x_mid = (minx + maxx) / 2 + rng.uniform(-80, 80)
    lines = [_wavy_line((x_mid, miny - pad), (x_mid + rng.uniform(-60, 60), maxy + pad), rng, 60)]
    for fraction in (0.25, 0.5, 0.75):
        y = miny + fraction * (maxy - miny) + rng.uniform(-70, 70)
        lines.append(_wavy_line((minx - pad, y), (maxx + pad, y + rng.uniform(-50, 50)), rng, 45))
    return lines


def _polygonize(linework: list) -> list[Polygon]:
    noded = shapely.union_all(linework)
    return list(shapely.get_parts(shapely.polygonize(shapely.get_parts(noded))))


def clip_pieces(outline: Polygon, lines: list[LineString]) -> list[Polygon]:
    pieces = _polygonize([outline.boundary, *lines])
    return [p for p in pieces if outline.contains(p.representative_point())]


def _extended(segment: LineString, by: float = 0.5) -> LineString:
    (x0, y0), (x1, y1) = segment.coords[0], segment.coords[-1]
    length = math.hypot(x1 - x0, y1 - y0)
    dx, dy = (x1 - x0) / length * by, (y1 - y0) / length * by
    return LineString([(x0 - dx, y0 - dy), (x1 + dx, y1 + dy)])


def _cut_line(polygon: Polygon, fraction: float, tilt: float) -> LineString | None:
    """A straight road across polygon leaving `fraction` of its area on one side."""
    minx, miny, maxx, maxy = polygon.bounds
    vertical = (maxx - minx) >= (maxy - miny)
    span = max(maxx - minx, maxy - miny) * 3
    total = polygon.area

    def half_plane(c: float) -> Polygon:
        if vertical:
            ya, yb = miny - span, maxy + span
            return Polygon(
                [
                    (c + tilt * (ya - miny) - span * 4, ya),
                    (c + tilt * (ya - miny), ya),
                    (c + tilt * (yb - miny), yb),
                    (c + tilt * (yb - miny) - span * 4, yb),
                ]
            )
        xa, xb = minx - span, maxx + span
        return Polygon(
            [
                (xa, c + tilt * (xa - minx) - span * 4),
                (xa, c + tilt * (xa - minx)),
                (xb, c + tilt * (xb - minx)),
                (xb, c + tilt * (xb - minx) - span * 4),
            ]
        )

    low, high = (minx, maxx) if vertical else (miny, maxy)
    low, high = low - span / 3, high + span / 3
    for _ in range(40):
        mid = (low + high) / 2
        if polygon.intersection(half_plane(mid)).area < fraction * total:
            low = mid
        else:
            high = mid
    c = (low + high) / 2
    if vertical:
        line = LineString(
            [(c + tilt * (-span), miny - span), (c + tilt * (maxy - miny + span), maxy + span)]
        )
    else:
        line = LineString(
            [(minx - span, c + tilt * (-span)), (maxx + span, c + tilt * (maxx - minx + span))]
        )
    cut = polygon.intersection(line)
    if cut.geom_type != "LineString" or cut.length == 0:
        return None  # a non-convex polygon cut in more than two; try another cut
    return _extended(cut)


def _split_lines(polygon: Polygon, parts: int, rng: np.random.Generator) -> list[LineString]:
    """Roads that split polygon into `parts` blocks of similar area (recursive bisection)."""
    if parts <= 1:
        return []
    for _ in range(20):
        left = parts // 2
        fraction = left / parts * rng.uniform(0.92, 1.08)
        line = _cut_line(polygon, fraction, rng.uniform(-0.1, 0.1))
        if line is None:
            continue
        halves = clip_pieces(polygon, [line])
        if len(halves) != 2:
            continue
        halves.sort(key=lambda h: abs(h.area / polygon.area - fraction))
        return [
            line,
            *_split_lines(halves[0], left, rng),
            *_split_lines(halves[1], parts - left, rng),
        ]
    raise RuntimeError("could not split a block; change the seed")


def reading_order(polygons: list[Polygon], row_height: float) -> list[int]:
    """Indices sorted north→south in rows of row_height, then west→east (code convention)."""
    points = [p.representative_point() for p in polygons]
    return sorted(
        range(len(polygons)), key=lambda i: (-round(points[i].y / row_height), points[i].x)
    )


def partition(
    outline: Polygon,
    rng: np.random.Generator,
    grid_counts: tuple[int, ...],
    micro_grid_total: int,
) -> tuple[list[Polygon], list[LineString], list[Polygon]]:
    """Communities, the roads between grids, and the micro-grid blocks (`grid_counts` per community)."""
    arterials = _arterials(rng, outline)
    communities = clip_pieces(outline, arterials)
    communities = [communities[i] for i in reading_order(communities, 700.0)]
    if len(communities) != len(grid_counts):
        raise RuntimeError(
            f"expected {len(grid_counts)} communities, the arterials made {len(communities)}"
        )
    collectors: list[LineString] = []
    for community, count in zip(communities, grid_counts, strict=True):
        collectors += _split_lines(community, count, rng)
    grids = clip_pieces(outline, arterials + collectors)
    micro_counts = _micro_counts(len(grids), micro_grid_total)
    local_roads: list[LineString] = []
    for grid, count in zip(grids, micro_counts, strict=True):
        local_roads += _split_lines(grid, count, rng)
    micro = clip_pieces(outline, arterials + collectors + local_roads)
    if len(micro) != micro_grid_total:
        raise RuntimeError(f"expected {micro_grid_total} micro-grids, got {len(micro)}")
    return communities, arterials + collectors, micro


def _micro_counts(grid_count: int, total: int) -> list[int]:
    base, extra = divmod(total, grid_count)
    return [base + (1 if i < extra else 0) for i in range(grid_count)]


def assign(children: list[Polygon], parents: list[Polygon]) -> list[int]:
    """For each child, the index of the parent holding its representative point (-1: none)."""
    tree = shapely.STRtree(parents)
    points = [c.representative_point() for c in children]
    found = tree.query(points, predicate="within")
    owner = [-1] * len(children)
    for child_index, parent_index in zip(found[0], found[1], strict=True):
        owner[child_index] = int(parent_index)
    return owner
