"""A deterministic synthetic street near Jinji Lake, Suzhou: grids and buildings, geometry only.

The street is cut by arterial roads into communities, by collector roads into grids and by
local roads into micro-grids (`spatial.demo_roads`); each parent is the coverage union of its
children, so every level partitions the one above exactly (no gaps, no overlaps). Everything is
built in metres (CGCS2000 / 3-degree GK CM 120E, EPSG:4549) and converted to WGS84 at the end; a
shared vertex converts to the same coordinates on both sides. The roads, outline and blocks stay
in metres so a caller can place cameras and events on them, drawing on from the same
random stream.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import shapely
from shapely.geometry import LineString, MultiPolygon, Point, Polygon

from spatial.crs import WGS84, transform
from spatial.demo_roads import assign, clip_pieces, partition, reading_order, street_outline

METRIC_CRS = "EPSG:4549"
CENTRE_LONLAT = (120.738, 31.305)  # east shore of Jinji Lake, Suzhou Industrial Park
COUNTY_CODE = "320571"  # 苏州工业园区
STREET_CODE = COUNTY_CODE + "005"
STREET_NAME = "湖东示范街道"
COMMUNITY_GRID_COUNTS = (8, 7, 8, 7, 8, 7, 8, 7)  # 60 grids in 8 communities
MICRO_GRID_TOTAL = 1202

COMMUNITY_NAMES = ("翠湖", "星港", "玲珑", "月桂", "锦华", "东沙湖", "钟园", "文星")
ROAD_NAMES = (
    "湖东大道",
    "星海路",
    "翠微街",
    "月桂路",
    "锦绣路",
    "青丘街",
    "华池路",
    "钟南街",
    "文荟路",
    "沙湖路",
    "玲珑街",
    "桂苑路",
    "翰林路",
    "方洲路",
    "娄葑街",
    "东环路",
    "金湖路",
    "白塘路",
    "苏胜路",
    "东旺街",
    "青剑路",
    "凤里街",
    "海棠路",
    "兰亭路",
    "星华街",
    "阳澄路",
    "港田路",
    "淞江路",
    "莲花路",
    "斜塘街",
    "车坊路",
    "唯亭路",
)
# The other streets of a demo district (`wangge demo load --streets N`), nearest first.
DISTRICT_STREET_NAMES = (
    "金鸡湖街道",
    "娄葑街道",
    "斜塘街道",
    "唯亭街道",
    "胜浦街道",
    "月亮湾街道",
    "独墅湖街道",
    "东沙湖街道",
    "星湖街道",
    "青剑湖街道",
    "阳澄湖街道",
    "车坊街道",
    "甪直街道",
    "郭巷街道",
    "横泾街道",
    "越溪街道",
    "浒关街道",
    "通安街道",
    "东渚街道",
    "镇湖街道",
    "光福街道",
    "木渎街道",
    "胥口街道",
    "香山街道",
)
MAX_STREETS = 1 + len(DISTRICT_STREET_NAMES)
STREET_SPACING_M = (3600.0, 3400.0)  # lattice pitch: a street is about 3.3 km × 3.1 km
COMPOUND_HEADS = "翠锦华金玉湖星月桂兰枫荷新嘉瑞和馨雅景泰康宁丰盛怡润"
COMPOUND_MIDS = "庭苑园湾城庄岸府邸居"


@dataclass
class DemoGrid:
    code: str
    name: str
    level: str
    kind: str
    parent_code: str | None
    geom: MultiPolygon
    households: int = 0
    population: int = 0


@dataclass(frozen=True)
class StreetPlan:
    """Where a street of the demo district lies and what it is called; index 0 is the demo street."""

    index: int
    code: str
    name: str
    offset_m: tuple[float, float]  # from the demo street's centre, on a lattice without overlap


def street_plans(count: int) -> list[StreetPlan]:
    """The demo street and the `count - 1` lattice cells nearest to it (a compact district)."""
    if not 1 <= count <= MAX_STREETS:
        raise ValueError(f"streets must be between 1 and {MAX_STREETS}")
    cells = sorted(
        ((i, j) for i in range(-3, 4) for j in range(-3, 4) if (i, j) != (0, 0)),
        key=lambda cell: (math.hypot(*cell), math.atan2(cell[1], cell[0])),
    )
    plans = [StreetPlan(0, STREET_CODE, STREET_NAME, (0.0, 0.0))]
    for number, (i, j) in enumerate(cells[: count - 1], start=1):
        code = f"{COUNTY_CODE}{int(STREET_CODE[-3:]) + number:03d}"
        dx, dy = i * STREET_SPACING_M[0], j * STREET_SPACING_M[1]
        plans.append(StreetPlan(number, code, DISTRICT_STREET_NAMES[number - 1], (dx, dy)))
    return plans


DEMO_STREET_PLAN = street_plans(1)[0]


@dataclass
class DemoStreet:
    """Grids and buildings in WGS84; roads, outline and micro-grid blocks in METRIC_CRS."""

    grids: list[DemoGrid]
    buildings: list[dict]
    roads: list[LineString]
    outline: Polygon
    blocks: list[Polygon]
    block_codes: dict[int, str]  # micro-grid code of each block, by index in `blocks`
    plan: StreetPlan = DEMO_STREET_PLAN
    # (road line index, house number) of each block with buildings: what its addresses carry,
    # unique per road name (`unique_numbers`).
    frontages: dict[int, tuple[int, int]] = field(default_factory=dict)


def _centre_metric() -> tuple[float, float]:
    point = transform(Point(CENTRE_LONLAT), WGS84, METRIC_CRS)
    return point.x, point.y


def _as_multi(geometry) -> MultiPolygon:
    if geometry.geom_type == "Polygon":
        return MultiPolygon([geometry])
    return geometry


def generate(seed: int) -> DemoStreet:
    """Build the demo street's grids and buildings deterministically from seed."""
    return street_from(np.random.default_rng(seed))


def street_from(rng: np.random.Generator, plan: StreetPlan = DEMO_STREET_PLAN) -> DemoStreet:
    """Build the street drawing from `rng`; the caller may keep drawing from it afterwards."""
    cx, cy = _centre_metric()
    cx, cy = cx + plan.offset_m[0], cy + plan.offset_m[1]
    outline = street_outline(cx, cy)
    community_shapes, roads, micro_shapes = partition(
        outline, rng, COMMUNITY_GRID_COUNTS, MICRO_GRID_TOTAL
    )

    grid_shapes = clip_pieces(outline, roads)
    grid_community = assign(grid_shapes, community_shapes)
    micro_grid_owner = assign(micro_shapes, grid_shapes)

    # Parents are coverage unions of their children, so their edges carry every child vertex.
    grid_union = [
        shapely.coverage_union_all(
            [m for m, g in zip(micro_shapes, micro_grid_owner, strict=True) if g == i]
        )
        for i in range(len(grid_shapes))
    ]
    community_union = [
        shapely.coverage_union_all([grid_union[g] for g, c in enumerate(grid_community) if c == i])
        for i in range(len(community_shapes))
    ]
    street_union = shapely.coverage_union_all(community_union)

    street = DemoGrid(plan.code, plan.name, "street", "other", None, _as_multi(street_union))
    grids: list[DemoGrid] = [street]
    grid_codes: dict[int, str] = {}
    kinds = _grid_kinds(rng, len(grid_shapes))
    for c_index, community_geom in enumerate(community_union):
        c_code = f"{plan.code}{c_index + 1:03d}"
        c_name = f"{COMMUNITY_NAMES[c_index]}社区"
        grids.append(
            DemoGrid(
                c_code, c_name, "community", "residential", plan.code, _as_multi(community_geom)
            )
        )
        members = [g for g, c in enumerate(grid_community) if c == c_index]
        ordered = [members[i] for i in reading_order([grid_shapes[m] for m in members], 250.0)]
        for sequence, g_index in enumerate(ordered, start=1):
            code = f"{c_code}{sequence:03d}"
            grid_codes[g_index] = code
            grids.append(
                DemoGrid(
                    code,
                    f"{c_name}第{sequence}网格",
                    "grid",
                    kinds[g_index],
                    c_code,
                    _as_multi(grid_union[g_index]),
                )
            )
    micro_by_grid: dict[int, list[int]] = {}
    for m_index, g_index in enumerate(micro_grid_owner):
        micro_by_grid.setdefault(g_index, []).append(m_index)
    micro_codes: dict[int, str] = {}
    for g_index, members in sorted(micro_by_grid.items(), key=lambda item: grid_codes[item[0]]):
        ordered = [members[i] for i in reading_order([micro_shapes[m] for m in members], 60.0)]
        parent = next(g for g in grids if g.code == grid_codes[g_index])
        for sequence, m_index in enumerate(ordered, start=1):
            code = f"{parent.code}{sequence:03d}"
            micro_codes[m_index] = code
            grids.append(
                DemoGrid(
                    code,
                    f"{parent.name}{sequence}号微网格",
                    "micro_grid",
                    parent.kind,
                    parent.code,
                    _as_multi(micro_shapes[m_index]),
                )
            )

    buildings, frontages = _buildings(rng, micro_shapes, micro_codes, roads, grids, plan.name)
    _roll_up_households(grids, buildings)

    # Convert to WGS84 in one pass per kind (shared vertices stay identical).
    converted = transform(np.array([g.geom for g in grids]), METRIC_CRS, WGS84)
    for grid, geom in zip(grids, converted, strict=True):
        grid.geom = geom
    if buildings:
        geoms = transform(np.array([b["geom"] for b in buildings]), METRIC_CRS, WGS84)
        for building, geom in zip(buildings, geoms, strict=True):
            building["geom"] = geom
    return DemoStreet(grids, buildings, roads, outline, micro_shapes, micro_codes, plan, frontages)


def _grid_kinds(rng: np.random.Generator, count: int) -> list[str]:
    kinds = ["residential"] * count
    special = rng.choice(count, size=10, replace=False)
    for i, index in enumerate(special):
        kinds[int(index)] = "commercial" if i < 6 else "office"
    return kinds


def _block_orientation(polygon: Polygon) -> float:
    rectangle = shapely.oriented_envelope(polygon)
    coords = np.asarray(rectangle.exterior.coords)
    edges = np.diff(coords, axis=0)
    longest = edges[np.argmax(np.hypot(edges[:, 0], edges[:, 1]))]
    return math.atan2(longest[1], longest[0])


def _buildings(
    rng, micro_shapes, micro_codes, roads, grids, street_name: str
) -> tuple[list[dict], dict[int, tuple[int, int]]]:
    """Footprints laid out in rows inside each block, set back from the roads, and the
    frontage (road line, house number) of each block with buildings."""
    road_tree = shapely.STRtree(roads)
    kind_of = {g.code: g.kind for g in grids if g.level == "micro_grid"}
    heads, mids = COMPOUND_HEADS, COMPOUND_MIDS
    buildings: list[dict] = []
    used_names: set[str] = set()
    claims: dict[int, tuple[int, int]] = {}  # block → (road line, number by projection)
    for m_index, block in enumerate(micro_shapes):
        code = micro_codes[m_index]
        kind = kind_of[code]
        inner = block.buffer(-5.0)
        if inner.is_empty:
            continue
        angle = _block_orientation(block)
        width, depth = (20.0, 13.0) if kind != "residential" else (12.0, 9.0)
        step_x, step_y = width + rng.uniform(4.5, 6.0), depth + rng.uniform(6.0, 7.5)
        centre = block.centroid
        radius = math.hypot(*(np.array(block.bounds[2:]) - np.array(block.bounds[:2]))) / 2 + step_x
        us = np.arange(-radius, radius, step_x) + rng.uniform(0, step_x)
        vs = np.arange(-radius, radius, step_y) + rng.uniform(0, step_y)
        uu, vv = np.meshgrid(us, vs)
        cos_a, sin_a = math.cos(angle), math.sin(angle)
        xs = centre.x + uu.ravel() * cos_a - vv.ravel() * sin_a
        ys = centre.y + uu.ravel() * sin_a + vv.ravel() * cos_a
        corners = np.array(
            [
                [-width / 2, -depth / 2],
                [width / 2, -depth / 2],
                [width / 2, depth / 2],
                [-width / 2, depth / 2],
            ]
        )
        rotated = corners @ np.array([[cos_a, sin_a], [-sin_a, cos_a]])
        rings = rotated[None, :, :] + np.column_stack([xs, ys])[:, None, :]
        candidates = shapely.polygons(rings)
        inside = candidates[shapely.contains(inner, candidates)]
        if len(inside) == 0:
            continue
        claims[m_index] = frontage(block, roads, road_tree)
        name = _compound_name(rng, heads, mids, used_names)
        use = {"residential": "residential", "commercial": "commercial", "office": "office"}[kind]
        for b_index, footprint in enumerate(inside, start=1):
            floors = int(rng.integers(6, 19)) if use == "residential" else int(rng.integers(3, 25))
            buildings.append(
                {
                    "code": f"{code}B{b_index:02d}",
                    "name": f"{name}{b_index}幢",
                    "address": None,  # below, once the block's number is unique on its road
                    "floors": floors,
                    "households": 0,
                    "use": use,
                    "micro_grid": code,
                    "geom": MultiPolygon([footprint]),
                }
            )
    numbers = unique_numbers([(road_name(r), n) for r, n in claims.values()])
    frontages = {
        block: (road_index, number)
        for (block, (road_index, _)), number in zip(claims.items(), numbers, strict=True)
    }
    block_of = {code: block for block, code in micro_codes.items()}
    for building in buildings:
        road_index, number = frontages[block_of[building["micro_grid"]]]
        building["address"] = (
            f"江苏省苏州市苏州工业园区{street_name}{road_name(road_index)}{number}号{building['name']}"
        )
    return buildings, frontages


def unique_numbers(claims: list[tuple[str, int]]) -> list[int]:
    """House numbers unique per road, as real plates are. `claims` are (road name, number) in
    block order; the first claim of a (road, number) keeps it, and each later claim of it gets
    the next number above of the same parity that no claim holds (odd stays odd) — so every
    first claimant keeps its number and the result is deterministic."""
    held = set(claims)
    kept: set[tuple[str, int]] = set()
    numbers = []
    for road, number in claims:
        if (road, number) not in kept:
            kept.add((road, number))
            numbers.append(number)
            continue
        free = number + 2
        while (road, free) in held:
            free += 2
        held.add((road, free))
        numbers.append(free)
    return numbers


def road_name(index: int) -> str:
    """The name of `roads[index]` (names repeat: there are more road lines than names)."""
    return ROAD_NAMES[index % len(ROAD_NAMES)]


def frontage(
    block: Polygon, roads: list[LineString], road_tree: shapely.STRtree
) -> tuple[int, int]:
    """The road a block's addresses name (index into `roads`: the nearest to its centroid) and
    the house number on it (odd, one per 12 m along the line)."""
    centre = block.centroid
    nearest_road = int(road_tree.nearest(centre))
    return nearest_road, int(roads[nearest_road].project(centre) / 12.0) * 2 + 1


def _compound_name(rng, heads: str, mids: str, used: set[str]) -> str:
    while True:
        name = heads[int(rng.integers(len(heads)))] + heads[int(rng.integers(len(heads)))]
        name += mids[int(rng.integers(len(mids)))]
        if name not in used and name[0] != name[1]:
            used.add(name)
            return name


def _roll_up_households(grids: list[DemoGrid], buildings: list[dict]) -> None:
    """Give each grid 300–500 households, spread over its buildings by floor area."""
    rng = np.random.default_rng(len(buildings))
    by_grid: dict[str, list[dict]] = {}
    for building in buildings:
        by_grid.setdefault(building["micro_grid"][:15], []).append(building)
    for grid in (g for g in grids if g.level == "grid"):
        members = by_grid.get(grid.code, [])
        target = int(rng.integers(320, 481))
        weights = np.array([b["floors"] * b["geom"].area for b in members])
        shares = weights / weights.sum() * target
        counts = np.floor(shares).astype(int)
        for i in np.argsort(counts - shares)[: target - counts.sum()]:
            counts[i] += 1
        for building, count in zip(members, counts, strict=True):
            building["households"] = int(count)
    totals: dict[str, int] = {}
    for building in buildings:
        code = building["micro_grid"]
        for length in (len(code), 15, 12, 9):
            totals[code[:length]] = totals.get(code[:length], 0) + building["households"]
    for grid in grids:
        grid.households = totals.get(grid.code, 0)
        grid.population = round(grid.households * 2.6)


def camera_sites(roads: list[LineString], outline: Polygon) -> list[tuple[Point, float]]:
    """Places along the roads every 140 m from each junction, with the road's heading (degrees)."""
    clipped = [r.intersection(outline) for r in roads]
    # union_all nodes the roads: each part runs from one junction to the next.
    segments = shapely.get_parts(shapely.union_all(clipped))
    sites: list[tuple[Point, float]] = []
    for segment in segments:
        if segment.length < 40:
            continue
        for distance in np.arange(15.0, segment.length - 15.0, 140.0):
            here = segment.interpolate(distance)
            ahead = segment.interpolate(min(distance + 5.0, segment.length))
            heading = math.degrees(math.atan2(ahead.x - here.x, ahead.y - here.y)) % 360
            sites.append((here, heading))
    return sites


def beside(point: Point, heading_deg: float, offset_m: float) -> Point:
    """The point `offset_m` to the right of `point` when facing `heading_deg` (clockwise from north)."""
    side = math.radians(heading_deg + 90.0)
    return Point(point.x + offset_m * math.sin(side), point.y + offset_m * math.cos(side))


def random_point_in(polygon: Polygon, rng: np.random.Generator) -> Point:
    """A uniformly random point inside `polygon` (rejection sampling in its bounds)."""
    minx, miny, maxx, maxy = polygon.bounds
    while True:
        point = Point(rng.uniform(minx, maxx), rng.uniform(miny, maxy))
        if polygon.contains(point):
            return point
