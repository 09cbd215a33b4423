"""A deterministic synthetic street near Jinji Lake, Suzhou, built from a road network.

The street is cut by arterial roads into communities, by collector roads into grids and by
local roads into micro-grids. All road lines are noded together and polygonised once per
level, so neighbouring blocks share identical edges; each parent is the coverage union of
its children, so every level partitions the one above exactly (no gaps, no overlaps).
Everything is built in metres (CGCS2000 / 3-degree GK CM 120E, EPSG:4549) and converted to
WGS84 at the end; a shared vertex converts to the same coordinates on both sides.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import shapely
from shapely.geometry import LineString, MultiPolygon, Point, Polygon

from spatial.crs import WGS84, transform

METRIC_CRS = "EPSG:4549"
CENTRE_LONLAT = (120.738, 31.305)  # east shore of Jinji Lake, Suzhou Industrial Park
COUNTY_CODE = "320571"  # 苏州工业园区
STREET_CODE = COUNTY_CODE + "005"
STREET_NAME = "湖东示范街道"
COMMUNITY_GRID_COUNTS = (8, 7, 8, 7, 8, 7, 8, 7)  # 60 grids in 8 communities
MICRO_GRID_TOTAL = 1202
CAMERA_COUNT = 137
EVENT_COUNT = 3000
EVENT_PERIOD_END = datetime(2026, 11, 1, tzinfo=UTC)

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
COMPOUND_HEADS = "翠锦华金玉湖星月桂兰枫荷新嘉瑞和馨雅景泰康宁丰盛怡润"
COMPOUND_MIDS = "庭苑园湾城庄岸府邸居"
SURNAMES = "王李张刘陈杨黄赵吴周徐孙朱马胡郭林何高梁郑罗宋谢唐韩曹许邓萧冯曾程蔡彭潘袁董余苏叶吕魏蒋田杜丁沈姜范江傅钟卢汪戴崔任陆廖姚方金邱夏谭韦贾邹石熊孟秦阎薛侯雷白龙段郝孔邵史毛常万顾赖武康贺严尹钱施牛洪龚"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍建红文辉海燕鹏春宇浩晨欣怡婷雪梅琳颖斌峰亮俊凯"
EVENT_CATEGORIES = (  # (code, weight, descriptions)
    ("E01", 30, ("暴露垃圾", "乱堆物料", "道路不洁", "违规晾晒")),
    ("E02", 8, ("非法小广告", "违规户外广告", "占道宣传")),
    ("E03", 7, ("施工扰民", "渣土撒漏", "围挡破损")),
    ("E04", 22, ("占道经营", "机动车乱停放", "非机动车乱停放", "店外经营")),
    ("E05", 3, ("火情", "路面塌陷", "燃气泄漏")),
    ("E99", 5, ("噪声投诉", "其他问题")),
    ("C01", 9, ("井盖破损", "路灯不亮", "消防栓损坏")),
    ("C02", 8, ("护栏损坏", "交通标志缺失", "路面破损")),
    ("C03", 3, ("垃圾箱破损", "公厕设施损坏")),
    ("C04", 4, ("绿地脏乱", "行道树倒伏")),
    ("C05", 1, ("违章搭建",)),
)
EVENT_SOURCES = (("patrol", 40), ("hotline_12345", 30), ("app", 15), ("video", 10), ("official", 5))


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


@dataclass
class DemoStreet:
    grids: list[DemoGrid]
    buildings: list[dict] = field(default_factory=list)
    cameras: list[dict] = field(default_factory=list)
    staff: list[dict] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)


def _centre_metric() -> tuple[float, float]:
    point = transform(Point(CENTRE_LONLAT), WGS84, METRIC_CRS)
    return point.x, point.y


def _outline(rng: np.random.Generator, cx: float, cy: float) -> Polygon:
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


def _clip_pieces(outline: Polygon, lines: list[LineString]) -> list[Polygon]:
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
        halves = _clip_pieces(polygon, [line])
        if len(halves) != 2:
            continue
        halves.sort(key=lambda h: abs(h.area / polygon.area - fraction))
        return [
            line,
            *_split_lines(halves[0], left, rng),
            *_split_lines(halves[1], parts - left, rng),
        ]
    raise RuntimeError("could not split a block; change the seed")


def _reading_order(polygons: list[Polygon], row_height: float) -> list[int]:
    """Indices sorted north→south in rows of row_height, then west→east (code convention)."""
    points = [p.representative_point() for p in polygons]
    return sorted(
        range(len(polygons)), key=lambda i: (-round(points[i].y / row_height), points[i].x)
    )


def _partition(outline: Polygon, rng: np.random.Generator) -> tuple[list, list, list]:
    arterials = _arterials(rng, outline)
    communities = _clip_pieces(outline, arterials)
    communities = [communities[i] for i in _reading_order(communities, 700.0)]
    if len(communities) != len(COMMUNITY_GRID_COUNTS):
        raise RuntimeError(f"expected 8 communities, the arterials made {len(communities)}")
    collectors: list[LineString] = []
    for community, count in zip(communities, COMMUNITY_GRID_COUNTS, strict=True):
        collectors += _split_lines(community, count, rng)
    grids = _clip_pieces(outline, arterials + collectors)
    micro_counts = _micro_counts(len(grids))
    local_roads: list[LineString] = []
    for grid, count in zip(grids, micro_counts, strict=True):
        local_roads += _split_lines(grid, count, rng)
    micro = _clip_pieces(outline, arterials + collectors + local_roads)
    if len(micro) != MICRO_GRID_TOTAL:
        raise RuntimeError(f"expected {MICRO_GRID_TOTAL} micro-grids, got {len(micro)}")
    return communities, arterials + collectors, micro


def _micro_counts(grid_count: int) -> list[int]:
    base, extra = divmod(MICRO_GRID_TOTAL, grid_count)
    return [base + (1 if i < extra else 0) for i in range(grid_count)]


def _assign(children: list[Polygon], parents: list[Polygon]) -> list[int]:
    tree = shapely.STRtree(parents)
    points = [c.representative_point() for c in children]
    found = tree.query(points, predicate="within")
    owner = [-1] * len(children)
    for child_index, parent_index in zip(found[0], found[1], strict=True):
        owner[child_index] = int(parent_index)
    return owner


def _as_multi(geometry) -> MultiPolygon:
    if geometry.geom_type == "Polygon":
        return MultiPolygon([geometry])
    return geometry


def generate(seed: int) -> DemoStreet:
    """Build the whole demo street (geometry in WGS84) deterministically from seed."""
    rng = np.random.default_rng(seed)
    cx, cy = _centre_metric()
    outline = _outline(rng, cx, cy)
    community_shapes, roads, micro_shapes = _partition(outline, rng)

    grid_shapes = _clip_pieces(outline, roads)
    grid_community = _assign(grid_shapes, community_shapes)
    micro_grid_owner = _assign(micro_shapes, grid_shapes)

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

    street = DemoGrid(STREET_CODE, STREET_NAME, "street", "other", None, _as_multi(street_union))
    grids: list[DemoGrid] = [street]
    grid_codes: dict[int, str] = {}
    kinds = _grid_kinds(rng, len(grid_shapes))
    for c_index, community_geom in enumerate(community_union):
        c_code = f"{STREET_CODE}{c_index + 1:03d}"
        c_name = f"{COMMUNITY_NAMES[c_index]}社区"
        grids.append(
            DemoGrid(
                c_code, c_name, "community", "residential", STREET_CODE, _as_multi(community_geom)
            )
        )
        members = [g for g, c in enumerate(grid_community) if c == c_index]
        ordered = [members[i] for i in _reading_order([grid_shapes[m] for m in members], 250.0)]
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
        ordered = [members[i] for i in _reading_order([micro_shapes[m] for m in members], 60.0)]
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

    buildings = _buildings(rng, micro_shapes, micro_codes, roads, grids)
    _roll_up_households(grids, buildings)
    cameras = _cameras(rng, roads, outline)
    staff = _staff(rng, grids)
    events = _events(rng, micro_shapes, micro_codes)

    # Convert everything to WGS84 in one pass per kind (shared vertices stay identical).
    converted = transform(np.array([g.geom for g in grids]), METRIC_CRS, WGS84)
    for grid, geom in zip(grids, converted, strict=True):
        grid.geom = geom
    for items in (buildings, cameras, events):
        if items:
            geoms = transform(np.array([item["geom"] for item in items]), METRIC_CRS, WGS84)
            for item, geom in zip(items, geoms, strict=True):
                item["geom"] = geom
    return DemoStreet(grids=grids, buildings=buildings, cameras=cameras, staff=staff, events=events)


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


def _buildings(rng, micro_shapes, micro_codes, roads, grids) -> list[dict]:
    """Footprints laid out in rows inside each block, set back from the roads."""
    road_tree = shapely.STRtree(roads)
    kind_of = {g.code: g.kind for g in grids if g.level == "micro_grid"}
    heads, mids = COMPOUND_HEADS, COMPOUND_MIDS
    buildings: list[dict] = []
    used_names: set[str] = set()
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
        nearest_road = int(road_tree.nearest(centre))
        road = ROAD_NAMES[nearest_road % len(ROAD_NAMES)]
        number = int(roads[nearest_road].project(centre) / 12.0) * 2 + 1
        name = _compound_name(rng, heads, mids, used_names)
        use = {"residential": "residential", "commercial": "commercial", "office": "office"}[kind]
        for b_index, footprint in enumerate(inside, start=1):
            floors = int(rng.integers(6, 19)) if use == "residential" else int(rng.integers(3, 25))
            buildings.append(
                {
                    "code": f"{code}B{b_index:02d}",
                    "name": f"{name}{b_index}幢",
                    "address": f"江苏省苏州市苏州工业园区{STREET_NAME}{road}{number}号{name}{b_index}幢",
                    "floors": floors,
                    "households": 0,
                    "use": use,
                    "micro_grid": code,
                    "geom": MultiPolygon([footprint]),
                }
            )
    return buildings


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


def _cameras(rng: np.random.Generator, roads: list[LineString], outline: Polygon) -> list[dict]:
    """Cameras at road junctions and along roads, each looking along its road."""
    clipped = [r.intersection(outline) for r in roads]
    # union_all nodes the roads: each part runs from one junction to the next.
    segments = shapely.get_parts(shapely.union_all(clipped))
    candidates: list[tuple[Point, float]] = []
    for segment in segments:
        if segment.length < 40:
            continue
        for distance in np.arange(15.0, segment.length - 15.0, 140.0):
            here = segment.interpolate(distance)
            ahead = segment.interpolate(min(distance + 5.0, segment.length))
            heading = math.degrees(math.atan2(ahead.x - here.x, ahead.y - here.y)) % 360
            candidates.append((here, heading))
    chosen = rng.choice(len(candidates), size=CAMERA_COUNT, replace=False)
    statuses = ["online"] * 128 + ["offline"] * 6 + ["fault"] * 3
    cameras = []
    for number, index in enumerate(sorted(int(i) for i in chosen), start=1):
        point, heading = candidates[index]
        if rng.random() < 0.5:
            heading = (heading + 180.0) % 360
        offset = 6.0  # mounted at the kerb, not in the carriageway
        side = math.radians(heading + 90.0)
        point = Point(point.x + offset * math.sin(side), point.y + offset * math.cos(side))
        cameras.append(
            {
                "code": f"{STREET_CODE}C{number:03d}",
                "name": f"千里眼监控点{number:03d}",
                "kind": "camera",
                "heading_deg": round(float(heading), 1),
                "fov_deg": float(rng.choice([60.0, 75.0, 90.0, 110.0])),
                "range_m": float(rng.choice([60.0, 80.0, 100.0, 150.0])),
                "status": statuses[number - 1],
                "geom": point,
            }
        )
    return cameras


def _person(rng: np.random.Generator) -> tuple[str, str]:
    name = SURNAMES[int(rng.integers(len(SURNAMES)))]
    name += "".join(GIVEN[int(i)] for i in rng.integers(len(GIVEN), size=int(rng.integers(1, 3))))
    phone = (
        "1"
        + str(int(rng.choice([33, 35, 37, 38, 39, 58, 87, 89])))
        + f"{int(rng.integers(10**8)):08d}"
    )
    return name, phone


def _staff(rng: np.random.Generator, grids: list[DemoGrid]) -> list[dict]:
    """The 1+1+1+N team on every grid and a liaison on every micro-grid."""
    staff = []
    for grid in grids:
        if grid.level == "grid":
            roles = [
                ("grid_head", None),
                ("grid_instructor", "街道党工委"),
                ("full_time_worker", None),
                ("functional_officer", "派出所"),
                ("functional_officer", "综合行政执法局"),
            ]
        elif grid.level == "micro_grid":
            roles = [("micro_grid_liaison", None)]
        else:
            continue
        for role, department in roles:
            name, phone = _person(rng)
            staff.append(
                {
                    "name": name,
                    "phone": phone,
                    "department": department,
                    "grid_code": grid.code,
                    "role": role,
                }
            )
    return staff


def _weighted(rng: np.random.Generator, options: tuple, count: int) -> np.ndarray:
    weights = np.array([o[1] for o in options], dtype=float)
    return rng.choice(len(options), size=count, p=weights / weights.sum())


def _events(
    rng: np.random.Generator, micro_shapes: list[Polygon], micro_codes: dict[int, str]
) -> list[dict]:
    """A year of historical events, mostly closed, the last weeks partly open."""
    categories = _weighted(rng, EVENT_CATEGORIES, EVENT_COUNT)
    sources = _weighted(rng, EVENT_SOURCES, EVENT_COUNT)
    blocks = rng.integers(len(micro_shapes), size=EVENT_COUNT)
    ages_h = np.sort(rng.uniform(0, 365 * 24, size=EVENT_COUNT))[::-1]
    events = []
    counters: dict[str, int] = {}
    for i in range(EVENT_COUNT):
        block = micro_shapes[int(blocks[i])]
        minx, miny, maxx, maxy = block.bounds
        while True:
            point = Point(rng.uniform(minx, maxx), rng.uniform(miny, maxy))
            if block.contains(point):
                break
        code, _, descriptions = EVENT_CATEGORIES[int(categories[i])]
        source = EVENT_SOURCES[int(sources[i])][0]
        counters[source] = counters.get(source, 0) + 1
        reported = EVENT_PERIOD_END - timedelta(hours=float(ages_h[i]))
        due_hours = {"E05": 2, "E04": 12, "E01": 24}.get(code, 48)
        age_days = ages_h[i] / 24
        closed = age_days > 14 or rng.random() < 0.6
        status = "closed" if closed else str(rng.choice(["received", "dispatched", "processing"]))
        handled_h = float(rng.gamma(2.0, due_hours / 3.0))
        events.append(
            {
                "source": source,
                "external_id": f"{source.upper()}-{reported:%Y%m%d}-{counters[source]:05d}",
                "category_code": code,
                "description": str(rng.choice(descriptions)),
                "grid_code": micro_codes[int(blocks[i])],
                "status": status,
                "reported_at": reported,
                "due_at": reported + timedelta(hours=due_hours),
                "closed_at": reported + timedelta(hours=handled_h) if closed else None,
                "geom": point,
            }
        )
    return events
