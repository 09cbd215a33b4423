"""The gazetteer's inverted indexes, built once from GazetteerRows (api/geocode/index.py asks them).

Every name is keyed by its canonical text (api/geocode/normalise.py); every place knows the street
and community (areas of the active generation) its point lies in, so a prefix in the caller's
text narrows the candidates without a spatial query per ticket.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field

import numpy as np
import shapely

from api.geocode.fuzzy import NameIndex
from api.geocode.normalise import canonical
from api.geocode.parse import COMPOUND_SUFFIXES, LEADING_ZEROS, Vocabulary, parse_canonical
from api.geocode.rows import GazetteerRows
from spatial.gazetteer import road_intersections

_BUILDING_TAIL = re.compile(r"(\d+[A-Z]?|[A-Z])幢[^幢]*$")
_RAW_TAIL = re.compile(r"(?<![0-9A-Za-z])([0-9]+[A-Za-z]?)(?:幢|栋|号楼|座)$")
_MODEL_SUFFIX = re.compile(r"(示范|新)$")
_AREA_SUFFIX = re.compile(r"(街道|社区|镇|乡)$")
_NUMBER_TAIL = re.compile(r"号$")


def _key(name: str | None) -> str:
    return canonical(name or "")


def _number_key(number: str) -> str:
    return LEADING_ZEROS.sub("", _NUMBER_TAIL.sub("", canonical(f"{number}号")))


def _stems(name: str) -> list[str]:
    """The 花园/家园/公寓 forms callers leave off or add."""
    stems = []
    for suffix in COMPOUND_SUFFIXES:
        if name.endswith(suffix) and len(name) - len(suffix) >= 2:
            stems.append(name[: -len(suffix)])
    return stems


@dataclass
class Register:
    vocabulary: Vocabulary = field(default_factory=Vocabulary)
    # places by key (the quality < 1 when the key is a variant: a stem, an added suffix)
    compounds_by_key: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    roads_by_key: dict[str, list[int]] = field(default_factory=dict)
    pois_by_key: dict[str, list[int]] = field(default_factory=dict)
    areas_by_key: dict[str, list[int]] = field(default_factory=dict)
    aliases: dict[str, tuple[str, str]] = field(default_factory=dict)  # key → (kind, code)
    house_numbers: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    # one building: its index; several: a list (400,000 one-element lists cost ~40 MB)
    buildings_by_compound: dict[tuple[str, str], int | list[int]] = field(default_factory=dict)
    buildings_by_house: dict[tuple[str, str, str], int | list[int]] = field(default_factory=dict)
    compounds_at_house: dict[tuple[str, str], set[int]] = field(default_factory=dict)
    building_house: list[tuple[str, str] | None] = field(default_factory=list)
    building_compound: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int32))
    intersections: dict[tuple[int, int], list[tuple[float, float]]] = field(default_factory=dict)
    # street / community index of each place's point (-1: none)
    area_of: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    road_areas: list[frozenset[int]] = field(default_factory=list)
    area_street: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int32))
    compound_names: NameIndex | None = None
    road_names: NameIndex | None = None
    poi_names: NameIndex | None = None
    by_code: dict[str, dict[str, int]] = field(default_factory=dict)
    # the provinces, cities, counties (or zones) the register's own addresses name, by rank
    divisions: dict[int, set[str]] = field(default_factory=dict)
    compound_keys: list[str] = field(default_factory=list)  # each compound row's own name key
    road_keys: list[str] = field(default_factory=list)  # each road row's own name key


def build_register(rows: GazetteerRows) -> Register:
    register = Register()
    vocabulary = register.vocabulary
    for number, area in enumerate(rows.areas):
        key = _key(area.name)
        register.areas_by_key.setdefault(key, []).append(number)
        vocabulary.add(key, area.level)
        short = _AREA_SUFFIX.sub("", key)
        for form in {short, _MODEL_SUFFIX.sub("", short)}:  # 湖东示范街道 → 湖东示范, 湖东
            if form != key and len(form) >= 2:
                register.areas_by_key.setdefault(form, []).append(number)
                vocabulary.add(form, f"{area.level}_short")
    for number, road in enumerate(rows.roads):
        for key in {_key(road.name), *(_key(a) for a in road.aliases)}:
            register.roads_by_key.setdefault(key, []).append(number)
            vocabulary.add(key, "road")
    register.road_keys = [_key(r.name) for r in rows.roads]
    register.compound_keys = [_key(c.name) for c in rows.compounds]
    for number, compound in enumerate(rows.compounds):
        keys = {_key(compound.name): 1.0}
        for alias in compound.aliases:
            keys.setdefault(_key(alias), 1.0)
        for key in list(keys):
            for stem in _stems(key):
                keys.setdefault(stem, 0.95)
        for key, quality in keys.items():
            register.compounds_by_key.setdefault(key, []).append((number, quality))
            vocabulary.add(key, "compound")
    for number, poi in enumerate(rows.pois):
        for key in {_key(poi.name), *(_key(a) for a in poi.aliases)}:
            register.pois_by_key.setdefault(key, []).append(number)
            vocabulary.add(key, "poi")
    for correction in rows.aliases:
        key = _key(correction.text) or correction.normalised
        target = (correction.target_kind, correction.target_code)
        register.aliases[key] = target
        if correction.normalised:
            register.aliases.setdefault(correction.normalised, target)
        vocabulary.add(key, "alias")
    for number, house in enumerate(rows.house_numbers):
        register.house_numbers.setdefault((_key(house.road), _number_key(house.number)), []).append(
            number
        )
    _buildings(register, rows)
    vocabulary.finish()
    _areas_of_places(register, rows)
    register.intersections = road_intersections(
        [r.code for r in rows.roads],
        [_key(r.name) for r in rows.roads],
        [r.geom for r in rows.roads],
    )
    register.compound_names = NameIndex(list(register.compounds_by_key))
    register.road_names = NameIndex(list(register.roads_by_key))
    register.poi_names = NameIndex(list(register.pois_by_key))
    register.by_code = {
        "building": {code: i for i, code in enumerate(rows.buildings.codes)},
        "compound": {c.code: i for i, c in enumerate(rows.compounds)},
        "road": {r.code: i for i, r in enumerate(rows.roads)},
        "house_number": {h.code: i for i, h in enumerate(rows.house_numbers)},
        "poi": {p.code: i for i, p in enumerate(rows.pois)},
        "community": {a.code: i for i, a in enumerate(rows.areas) if a.level == "community"},
    }
    return register


def _buildings(register: Register, rows: GazetteerRows) -> None:
    """Parse each address once per distinct prefix (everything before the building number)."""
    buildings = rows.buildings
    prefix_vocabulary = Vocabulary()
    for key in register.roads_by_key:
        prefix_vocabulary.add(key, "road")
    for key in register.compounds_by_key:
        prefix_vocabulary.add(key, "compound")
    for area_key, area_indexes in register.areas_by_key.items():
        for area_index in area_indexes:
            area = rows.areas[area_index]
            full = area_key == _key(area.name)
            prefix_vocabulary.add(area_key, area.level if full else f"{area.level}_short")
    prefix_vocabulary.finish()
    compound_names = {c.code: _key(c.name) for c in rows.compounds}
    prefixes: dict[str, tuple[str | None, str | None, str | None]] = {}
    owner: dict[tuple[str | None, str | None, str | None], int] = {}
    compound_of = np.full(len(buildings.codes), -1, dtype=np.int32)
    house_of: list[tuple[str, str] | None] = [None] * len(buildings.codes)
    canonical_prefix: dict[str, str] = {}
    houses: dict[tuple[str, str], tuple[str, str]] = {}  # one tuple per (road, number), shared
    for index, address in enumerate(buildings.addresses):
        # Most addresses end "…新翠居4幢" in plain digits: canonicalise the shared prefix once.
        raw = _RAW_TAIL.search(address)
        if raw:
            prefix = canonical_prefix.get(address[: raw.start()])
            if prefix is None:
                prefix = canonical_prefix[address[: raw.start()]] = canonical(
                    address[: raw.start()]
                )
            building = sys.intern(LEADING_ZEROS.sub("", raw.group(1).upper()))
        else:
            text = canonical(address)
            tail = _BUILDING_TAIL.search(text)
            if not tail:
                continue
            prefix, building = (
                text[: tail.start()],
                sys.intern(LEADING_ZEROS.sub("", tail.group(1))),
            )
        parsed = prefixes.get(prefix)
        if parsed is None:
            found = parse_canonical(prefix, prefix_vocabulary)
            for rank, codes in found.divisions:
                register.divisions.setdefault(rank, set()).update(codes)
            parts = found.parts
            rest = prefix[found.address_end :]
            compound = parts.get("compound") or parts.get("compound_text")
            if compound is None and 2 <= len(rest) <= 12 and not any(c.isdigit() for c in rest):
                compound = rest  # no compound row: its buildings still match by this name
            parsed = (parts.get("road") or parts.get("road_text"), parts.get("number"), compound)
            prefixes[prefix] = parsed
        road, number, compound = parsed
        if compound:
            _add(register.buildings_by_compound, (compound, building), index)
            if compound not in register.compounds_by_key:
                register.vocabulary.add(compound, "compound")
        if road and number:
            _add(register.buildings_by_house, (road, number, building), index)
            if road not in register.roads_by_key:  # a road without a row: still a known name
                register.vocabulary.add(road, "road")
            house_of[index] = houses.setdefault((road, number), (road, number))
        place = (road, number, compound)
        if place not in owner:
            owner[place] = _owning_compound(
                register, compound, buildings.lon[index], buildings.lat[index], rows, compound_names
            )
        compound_of[index] = owner[place]
        if road and number and owner[place] >= 0:
            register.compounds_at_house.setdefault((road, number), set()).add(owner[place])
    register.building_compound = compound_of
    register.building_house = house_of


def _add(index: dict, key: tuple, value: int) -> None:
    found = index.get(key)
    if found is None:
        index[key] = value
    elif isinstance(found, int):
        index[key] = [found, value]
    else:
        found.append(value)


def members(found: int | list[int] | None) -> list[int] | tuple[int, ...]:
    """The buildings under one key of buildings_by_compound / buildings_by_house."""
    if found is None:
        return ()
    return (found,) if isinstance(found, int) else found


def _owning_compound(
    register: Register,
    name: str | None,
    lon: float,
    lat: float,
    rows: GazetteerRows,
    names: dict[str, str],
) -> int:
    """The compound of that name containing the building, else the nearest of that name."""
    if not name:
        return -1
    numbers = [
        n
        for n, _ in register.compounds_by_key.get(name, ())
        if names[rows.compounds[n].code] == name
    ]
    if not numbers:
        return -1
    point = shapely.Point(lon, lat)
    return min(numbers, key=lambda n: rows.compounds[n].geom.distance(point))


def _areas_of_places(register: Register, rows: GazetteerRows) -> None:
    """Street and community of every place's point (one vectorised query per kind)."""
    geoms = [a.geom for a in rows.areas]
    levels = np.array([a.level for a in rows.areas])
    tree = shapely.STRtree(geoms) if geoms else None

    def locate(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        street = np.full(len(lon), -1, dtype=np.int32)
        community = np.full(len(lon), -1, dtype=np.int32)
        if tree is None or len(lon) == 0:
            return street, community
        points, areas = tree.query(shapely.points(lon, lat), predicate="within")
        is_street = levels[areas] == "street"
        street[points[is_street]] = areas[is_street]
        community[points[~is_street]] = areas[~is_street]
        return street, community

    b = rows.buildings
    register.area_of["building"] = locate(
        np.asarray(b.lon, dtype=float), np.asarray(b.lat, dtype=float)
    )
    points = [c.geom.representative_point() for c in rows.compounds]
    register.area_of["compound"] = locate(
        np.array([p.x for p in points], dtype=float), np.array([p.y for p in points], dtype=float)
    )
    for kind, places in (("house_number", rows.house_numbers), ("poi", rows.pois)):
        register.area_of[kind] = locate(
            np.array([p.lon for p in places], dtype=float),
            np.array([p.lat for p in places], dtype=float),
        )
    inner = [a.geom.representative_point() for a in rows.areas]
    register.area_street = locate(
        np.array([p.x for p in inner], dtype=float), np.array([p.y for p in inner], dtype=float)
    )[0]
    register.road_areas = [frozenset() for _ in rows.roads]
    if tree is not None and rows.roads:
        roads, areas = tree.query([r.geom for r in rows.roads], predicate="intersects")
        found: dict[int, set[int]] = {}
        for road, area in zip(roads.tolist(), areas.tolist(), strict=True):
            found.setdefault(road, set()).add(area)
        register.road_areas = [frozenset(found.get(i, ())) for i in range(len(rows.roads))]
