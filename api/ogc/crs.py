"""CRS by reference (OGC API Features Part 2): which CRSs wangge answers in, and their axis order.

Storage is EPSG:4326 with longitude first. The OGC default is CRS84 (longitude, latitude). Every
EPSG CRS offered here (4326, 4490, the CGCS2000 3-degree Gauss-Kruger zones 4513–4554) has its
northing/latitude axis first, so their coordinates are flipped on the way out and on the way in,
as Part 2 requires. GCJ-02 and BD-09 are not CRSs in the OGC sense (no EPSG code, no published
definition): they are a documented extension (`crs=gcj02`, `crs=bd09`), never a default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import shapely
from pyproj import CRS, Transformer

from api.errors import InvalidInput

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
_EPSG_URI = "http://www.opengis.net/def/crs/EPSG/0/{code}"
GK_ZONES = tuple(range(4513, 4555))  # CGCS2000 3-degree Gauss-Kruger (zone-numbered and CM)
EPSG_CODES = (4326, 4490, *GK_ZONES)
CHINESE = {"gcj02": "GCJ02", "bd09": "BD09"}  # extension values: China's web-map offsets

_EPSG_FORMS = (
    re.compile(r"^https?://www\.opengis\.net/def/crs/EPSG/0/([0-9]{1,6})$"),
    re.compile(r"^\[?EPSG:([0-9]{1,6})\]?$", re.IGNORECASE),
    re.compile(r"^urn:ogc:def:crs:EPSG:[0-9.]*:([0-9]{1,6})$", re.IGNORECASE),
)
_CRS84_FORMS = {
    CRS84,
    "https://www.opengis.net/def/crs/OGC/1.3/CRS84",
    "http://www.opengis.net/def/crs/OGC/0/CRS84",
    "urn:ogc:def:crs:OGC:1.3:CRS84",
    "OGC:CRS84",
    "[OGC:CRS84]",
    "CRS84",
}


@dataclass(frozen=True)
class OgcCrs:
    """A CRS a request named: its URI, PostGIS SRID, axis order and decimal places."""

    uri: str
    srid: int  # 4326 for CRS84 and the Chinese extensions (shifted in Python)
    lat_first: bool  # northing/latitude axis first (every EPSG CRS offered here)
    chinese: str | None = None  # GCJ02 | BD09

    @property
    def projected(self) -> bool:
        return self.srid in GK_ZONES

    @property
    def digits(self) -> int:
        """Decimal places of coordinates: 1 mm in metres, about 1 cm in degrees."""
        return 3 if self.projected else 7

    @property
    def header(self) -> str:
        """The Content-Crs header value."""
        return f"<{self.uri}>"


DEFAULT = OgcCrs(CRS84, 4326, False)


def supported_uris() -> list[str]:
    """Every CRS URI the collections list (`crs`), CRS84 first."""
    return [CRS84, *(_EPSG_URI.format(code=code) for code in EPSG_CODES)]


def parse_crs(value: str | None, where: str) -> OgcCrs:
    """The CRS a `crs`, `bbox-crs` or `filter-crs` parameter names (CRS84 when absent)."""
    if value is None or value == "":
        return DEFAULT
    text = value.strip()
    if text in _CRS84_FORMS:
        return DEFAULT
    if text.lower() in CHINESE:
        return OgcCrs(text.lower(), 4326, False, CHINESE[text.lower()])
    for form in _EPSG_FORMS:
        match = form.match(text)
        if match and int(match.group(1)) in EPSG_CODES:
            code = int(match.group(1))
            return OgcCrs(_EPSG_URI.format(code=code), code, True)
    raise InvalidInput(
        f"不支持的坐标参考系：{value[:100]}（可用 CRS84、EPSG:4326、EPSG:4490、"
        "EPSG:4513–4554 国家2000 高斯-克吕格投影带，或扩展值 gcj02、bd09）",
        code="unknown_crs",
        where=where,
    )


_MARGIN_DEG = 3.0  # Gauss-Kruger stays well-behaved a few degrees beyond a zone's area of use


@lru_cache(maxsize=64)
def zone_bounds(srid: int) -> tuple[float, float, float, float]:
    """(min easting, min northing, max easting, max northing) where a projected CRS offered here
    can be reprojected: its area of use widened by a few degrees. PostGIS fails (a 500) on
    coordinates far outside it, so requests are checked against these bounds first."""
    area = CRS.from_epsg(srid).area_of_use
    if area is None:  # every zone offered has one; be safe for others
        raise ValueError(f"EPSG:{srid} has no area of use")
    west, south = max(area.west - _MARGIN_DEG, -180.0), max(area.south - _MARGIN_DEG, -85.0)
    east, north = min(area.east + _MARGIN_DEG, 180.0), min(area.north + _MARGIN_DEG, 85.0)
    outline = shapely.segmentize(shapely.box(west, south, east, north), 0.25)
    to_zone = Transformer.from_crs("EPSG:4326", f"EPSG:{srid}", always_xy=True)
    xs, ys = to_zone.transform(*shapely.get_coordinates(outline).T)
    return float(min(xs)), float(min(ys)), float(max(xs)), float(max(ys))


def within_zone(srid: int, bounds: tuple[float, float, float, float]) -> bool:
    """Whether x/y bounds (easting first) lie where EPSG:`srid` can be reprojected."""
    minx, miny, maxx, maxy = zone_bounds(srid)
    return minx <= bounds[0] and miny <= bounds[1] and bounds[2] <= maxx and bounds[3] <= maxy
