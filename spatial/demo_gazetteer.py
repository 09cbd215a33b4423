"""The demo street's gazetteer (地名地址库): roads, compounds, house-number plates and POIs.

Everything follows from the street as `spatial.demo_street` built it, so the gazetteer agrees
with the buildings' addresses ("…淞江路19号新翠居4幢"):
- a road per name: the road lines carrying that name (more lines than names, so a name may
  have two stretches), clipped to the street; aliases are the other common suffix (路 → 街, 街/大道 → 路);
- a compound per micro-grid with buildings: the name its buildings carry, the block set back
  from the kerb as outline (so it lies in exactly one micro-grid), "…小区" / "…广场" / "…大厦"
  aliases and, for some, a 俗称;
- a house-number plate at each compound's gate: inside the compound, on the side facing the
  road its addresses name, with the number they carry (unique on its road, as real 门牌 are:
  `spatial.demo_street.unique_numbers`); some compounds have a second gate numbered
  19-1 / 19甲 / 19附1;
- about 45 POIs (schools, markets, hospitals, clinics, parks, supermarkets, a police station,
  metro stations…) inside blocks, named after the road the block fronts, with aliases.
Computed in metres (METRIC_CRS) and converted to WGS84 at the end; `rng` is a stream of the
gazetteer's own, so nothing else the seed means changes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import shapely
from shapely.geometry import LineString, MultiLineString, MultiPolygon, Point, Polygon

from spatial.crs import WGS84, transform
from spatial.demo_street import (
    COMMUNITY_NAMES,
    METRIC_CRS,
    DemoStreet,
    frontage,
    road_name,
)

ARTERIAL_COUNT = 4  # spatial.demo_roads.partition: the first road lines are the arterials
GATE_SETBACK_M = 3.0  # compound wall behind the kerb
PLATE_INSET_M = 4.0  # the plate is on the gate post, inside the wall
SECOND_GATE_SHARE = 0.1
SECOND_GATE_AT_M = 25.0  # along the wall from the main gate
SECOND_GATE_SUFFIXES = ("-1", "甲", "附1")
NICKNAME_SHARE = 0.2
_BUILDING_SUFFIX = re.compile(r"\d+幢$")
_ROAD_SUFFIX = re.compile(r"(大道|路|街)$")


@dataclass
class DemoGazetteer:
    """Rows for the tables of migration 0010 (geometries in WGS84)."""

    roads: list[dict] = field(default_factory=list)
    compounds: list[dict] = field(default_factory=list)
    house_numbers: list[dict] = field(default_factory=list)
    pois: list[dict] = field(default_factory=list)


def road_stem(name: str) -> str:
    """星海路 → 星海, 湖东大道 → 湖东."""
    return _ROAD_SUFFIX.sub("", name)


def street_stem(name: str) -> str:
    """湖东示范街道 → 湖东, 娄葑街道 → 娄葑."""
    return name.removesuffix("街道").removesuffix("示范")


def demo_gazetteer(street: DemoStreet, rng: np.random.Generator) -> DemoGazetteer:
    """The gazetteer of `street` (its roads, outline and blocks in METRIC_CRS)."""
    gazetteer = DemoGazetteer()
    gazetteer.roads = _roads(street)
    road_tree = shapely.STRtree(street.roads)
    blocks = _compound_blocks(street)
    taken = {r["name"] for r in gazetteer.roads} | {
        a for r in gazetteer.roads for a in r["aliases"]
    }
    for block_index, (name, use) in blocks.items():
        block = street.blocks[block_index]
        code = street.block_codes[block_index]
        outline = block.buffer(-GATE_SETBACK_M)
        road_index, number = street.frontages.get(block_index) or frontage(
            block, street.roads, road_tree
        )
        compound = {
            "code": f"{code}-XQ",
            "name": name,
            "aliases": _compound_aliases(name, use, rng, taken),
            "kind": use,
            "geom": outline,
            "block": block_index,
            "road": road_name(road_index),
        }
        gazetteer.compounds.append(compound)
        gazetteer.house_numbers += _plates(
            compound, street.roads[road_index], block.centroid, number, rng
        )
    gazetteer.pois = _pois(street, gazetteer.compounds, rng)
    _to_wgs84(gazetteer)
    return gazetteer


def _compound_blocks(street: DemoStreet) -> dict[int, tuple[str, str]]:
    """Block index → (compound name, use) for every block with buildings, in block order."""
    index_of = {code: index for index, code in street.block_codes.items()}
    found: dict[int, tuple[str, str]] = {}
    for building in street.buildings:
        index = index_of[building["micro_grid"]]
        if index not in found:
            found[index] = (_BUILDING_SUFFIX.sub("", building["name"]), building["use"])
    return dict(sorted(found.items()))


def _roads(street: DemoStreet) -> list[dict]:
    """One road per name: its lines clipped to the street, arterial when any line is one."""
    lines_by_name: dict[str, list[int]] = {}
    for index in range(len(street.roads)):
        lines_by_name.setdefault(road_name(index), []).append(index)
    names = set(lines_by_name)
    roads = []
    for number, (name, indices) in enumerate(lines_by_name.items(), start=1):
        parts = [
            part
            for i in indices
            for part in shapely.get_parts(street.roads[i].intersection(street.outline))
            if part.geom_type == "LineString" and part.length > 0
        ]
        swapped = road_stem(name) + ("街" if name.endswith("路") else "路")
        roads.append(
            {
                "code": f"{street.plan.code}-R{number:02d}",
                "name": name,
                "aliases": [swapped] if swapped not in names else [],
                "kind": "arterial" if min(indices) < ARTERIAL_COUNT else "collector",
                "geom": MultiLineString(parts),
            }
        )
    return roads


def _compound_aliases(name: str, use: str, rng: np.random.Generator, taken: set[str]) -> list[str]:
    """…小区 (residential), …广场 (commercial), …大厦 (office), and for some a 俗称."""
    suffix = {"residential": "小区", "commercial": "广场", "office": "大厦"}[use]
    aliases = [name + suffix]
    if use == "residential" and rng.random() < NICKNAME_SHARE:
        nickname = (name[:2] + "新村") if rng.random() < 0.5 else ("老" + name[:2])
        if nickname not in taken:
            aliases.append(nickname)
    taken.update([name, *aliases])
    return aliases


def _inward(point: Point, polygon: Polygon | MultiPolygon, by_m: float) -> Point:
    """`point` (on or near the outline) moved `by_m` towards the inside; the polygon's
    representative point when that does not land inside."""
    inside = polygon.representative_point()
    dx, dy = inside.x - point.x, inside.y - point.y
    length = math.hypot(dx, dy)
    if length > by_m:
        moved = Point(point.x + dx / length * by_m, point.y + dy / length * by_m)
        if polygon.contains(moved):
            return moved
    return inside


def _plates(
    compound: dict, road: LineString, centre: Point, number: int, rng: np.random.Generator
) -> list[dict]:
    """The main gate's plate, facing the spot on the road the number was measured at; for
    some compounds a second gate along the wall with a suffixed number."""
    outline = compound["geom"]
    spot = road.interpolate(road.project(centre))
    wall = outline.boundary
    on_wall = wall.interpolate(wall.project(spot))
    plates = [
        {
            "code": f"{compound['code'][:-3]}-MP1",
            "road": compound["road"],
            "number": str(number),
            "compound_code": compound["code"],
            "geom": _inward(on_wall, outline, PLATE_INSET_M),
        }
    ]
    if rng.random() < SECOND_GATE_SHARE:
        suffix = SECOND_GATE_SUFFIXES[int(rng.integers(len(SECOND_GATE_SUFFIXES)))]
        along = wall.project(on_wall) + SECOND_GATE_AT_M * (1 if rng.random() < 0.5 else -1)
        second = wall.interpolate(along % wall.length)
        plates.append(
            {
                "code": f"{compound['code'][:-3]}-MP2",
                "road": compound["road"],
                "number": f"{number}{suffix}",
                "compound_code": compound["code"],
                "geom": _inward(second, outline, PLATE_INSET_M),
            }
        )
    return plates


# (category, how many, name and aliases from (road stem, community, street stem), block use)
PoiKind = tuple[str, int, Callable[[str, str, str], tuple[str, list[str]]], str | None]
SUPERMARKETS = ("华润万家", "永辉超市", "大润发", "欧尚超市", "盒马鲜生")
POI_KINDS: tuple[PoiKind, ...] = (
    ("school", 4, lambda r, c, s: (f"{r}小学", [f"{r}实验小学"]), "residential"),
    ("school", 3, lambda r, c, s: (f"{r}中学", [f"{r}初级中学", f"{r}初中"]), "residential"),
    ("kindergarten", 5, lambda r, c, s: (f"{r}幼儿园", [f"{r}实验幼儿园"]), "residential"),
    ("market", 4, lambda r, c, s: (f"{r}菜市场", [f"{r}农贸市场", f"{r}菜场"]), "commercial"),
    ("hospital", 1, lambda r, c, s: (f"{s}人民医院", [f"{s}医院"]), None),
    ("hospital", 1, lambda r, c, s: (f"{r}中医医院", [f"{r}中医院"]), None),
    (
        "clinic",
        len(COMMUNITY_NAMES),
        lambda r, c, s: (f"{c}社区卫生服务中心", [f"{c}卫生服务站", f"{c}社区医院"]),
        "residential",
    ),
    ("park", 3, lambda r, c, s: (f"{r}公园", [f"{r}绿地", f"{r}游园"]), None),
    ("supermarket", len(SUPERMARKETS), lambda r, c, s: ("", []), "commercial"),
    ("police", 1, lambda r, c, s: (f"{s}派出所", [f"{s}公安派出所"]), None),
    ("metro", 3, lambda r, c, s: (f"{r}站", [f"地铁{r}站", f"{r}地铁站"]), None),
    ("bank", 1, lambda r, c, s: (f"中国银行{r}支行", [f"中行{r}支行"]), "commercial"),
    ("bank", 1, lambda r, c, s: (f"工商银行{r}支行", [f"工行{r}支行"]), "office"),
    ("post", 1, lambda r, c, s: (f"{s}邮政支局", [f"{s}邮局"]), None),
    ("mall", 2, lambda r, c, s: (f"{r}广场", [f"{r}购物中心"]), "commercial"),
    ("culture", 1, lambda r, c, s: (f"{s}文体中心", [f"{s}文化中心"]), None),
    ("fuel", 1, lambda r, c, s: (f"中石化{r}加油站", [f"{r}加油站"]), None),
)


def _pois(street: DemoStreet, compounds: list[dict], rng: np.random.Generator) -> list[dict]:
    """POIs in blocks of distinct compounds: a clinic in each community, the rest named
    after the road their block fronts (a metro station keeps the road's full name)."""
    stem = street_stem(street.plan.name)
    order = [compounds[int(i)] for i in rng.permutation(len(compounds))]
    used_blocks: set[int] = set()
    taken = {c["name"] for c in compounds} | {a for c in compounds for a in c["aliases"]}
    pois: list[dict] = []
    for category, count, naming, use in POI_KINDS:
        placed = 0
        for compound in order:
            if placed == count:
                break
            if compound["block"] in used_blocks or (use and compound["kind"] != use):
                continue
            community = COMMUNITY_NAMES[int(street.block_codes[compound["block"]][9:12]) - 1]
            road = compound["road"]
            if category == "supermarket":
                brand = SUPERMARKETS[placed]
                name, aliases = f"{brand}（{road}店）", [f"{road}{brand}"]
            elif category == "metro":
                name, aliases = naming(road, community, stem)
            else:
                name, aliases = naming(road_stem(road), community, stem)
            if name in taken or any(a in taken for a in aliases):
                continue
            taken.update([name, *aliases])
            used_blocks.add(compound["block"])
            placed += 1
            pois.append(
                {
                    "code": f"{street.plan.code}-P{len(pois) + 1:03d}",
                    "name": name,
                    "aliases": aliases,
                    "category": category,
                    "geom": _poi_point(compound["geom"], rng),
                }
            )
    return pois


def _poi_point(outline: Polygon | MultiPolygon, rng: np.random.Generator) -> Point:
    """A point well inside the compound (its representative point, nudged a little)."""
    inside = outline.representative_point()
    nudged = Point(inside.x + rng.uniform(-8, 8), inside.y + rng.uniform(-8, 8))
    return nudged if outline.contains(nudged) else inside


def _to_wgs84(gazetteer: DemoGazetteer) -> None:
    """One transform per kind; compounds as valid MultiPolygons, roads as MultiLineStrings."""
    for rows in (gazetteer.roads, gazetteer.compounds, gazetteer.house_numbers, gazetteer.pois):
        if not rows:
            continue
        converted = transform(np.array([r["geom"] for r in rows], dtype=object), METRIC_CRS, WGS84)
        for row, geom in zip(rows, converted, strict=True):
            row["geom"] = geom
    for compound in gazetteer.compounds:
        geom = compound.pop("geom")
        if not geom.is_valid:
            geom = shapely.make_valid(geom)
        polygons = [p for p in shapely.get_parts(geom) if p.geom_type == "Polygon"]
        compound["geom"] = MultiPolygon(polygons)
        del compound["block"], compound["road"]
