"""The gazetteer as loaded from the database (api/db/gazetteer.py) and handed to the matcher
(api/geocode/index.py). Plain data: WGS84 (EPSG:4326) throughout; names and aliases as stored
(the matcher normalises them)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from shapely.geometry.base import BaseGeometry


@dataclass(frozen=True)
class BuildingRows:
    """Columns, one entry per building with an address (400,000 at district scale)."""

    codes: list[str]
    names: list[str | None]  # e.g. 新翠居4幢
    addresses: list[str]  # e.g. 江苏省苏州市苏州工业园区金鸡湖街道淞江路19号新翠居4幢
    lon: np.ndarray  # a point inside the footprint (ST_PointOnSurface)
    lat: np.ndarray


@dataclass(frozen=True)
class CompoundRow:
    code: str
    name: str  # 新翠居
    aliases: tuple[str, ...]  # 新翠居小区, 俗称…
    kind: str | None
    geom: BaseGeometry  # MultiPolygon


@dataclass(frozen=True)
class RoadRow:
    code: str
    name: str  # 淞江路
    aliases: tuple[str, ...]
    kind: str | None
    geom: BaseGeometry  # MultiLineString


@dataclass(frozen=True)
class HouseNumberRow:
    code: str
    road: str  # the road's name as written on the plate
    number: str  # normalised: "19", "19-1", "19甲"
    compound_code: str | None
    lon: float
    lat: float


@dataclass(frozen=True)
class PoiRow:
    code: str
    name: str
    aliases: tuple[str, ...]
    category: str | None  # school, market, hospital, park…
    lon: float
    lat: float


@dataclass(frozen=True)
class AliasRow:
    """A dispatcher's correction: this wording means that place."""

    normalised: str
    text: str
    target_kind: str  # building | compound | house_number | road | poi | intersection
    target_code: str  # intersection: "<road code>+<road code>"


@dataclass(frozen=True)
class AreaRow:
    """A street or community of the active generation (for prefixes and community precision)."""

    code: str
    name: str
    level: str  # street | community
    geom: BaseGeometry  # MultiPolygon


@dataclass(frozen=True)
class GazetteerRows:
    buildings: BuildingRows
    compounds: list[CompoundRow] = field(default_factory=list)
    roads: list[RoadRow] = field(default_factory=list)
    house_numbers: list[HouseNumberRow] = field(default_factory=list)
    pois: list[PoiRow] = field(default_factory=list)
    aliases: list[AliasRow] = field(default_factory=list)
    areas: list[AreaRow] = field(default_factory=list)
