"""Coordinate reference systems: parsing what users type, reprojecting, choosing a metric zone.

Storage is EPSG:4326. CGCS2000 (EPSG:4490) equals WGS84 within centimetres and PROJ treats the
two as the same datum, so 4490 input passes through unchanged. Lengths and areas are measured
in the CGCS2000 3-degree Gauss-Kruger zone whose central meridian is nearest the data
(EPSG:4534 = 75°E … EPSG:4554 = 135°E), never in degrees.
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache

import numpy as np
import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError, ProjError

from spatial import chinacrs

WGS84 = "EPSG:4326"
_GK_FIRST_EPSG = 4534  # CGCS2000 / 3-degree Gauss-Kruger CM 75E
_GK_FIRST_MERIDIAN = 75
_GK_LAST_MERIDIAN = 135


class UnknownCRS(ValueError):
    """A CRS string PROJ does not know."""


# The two Chinese web-map systems PROJ does not know, by the names clients use for them.
CHINESE_SYSTEMS = {
    "gcj02": "GCJ02",
    "gcj-02": "GCJ02",
    "gcj": "GCJ02",
    "amap": "GCJ02",
    "bd09": "BD09",
    "bd-09": "BD09",
    "baidu": "BD09",
}
_TO_WGS84 = {"GCJ02": chinacrs.gcj02_to_wgs84, "BD09": chinacrs.bd09_to_wgs84}
_FROM_WGS84 = {"GCJ02": chinacrs.wgs84_to_gcj02, "BD09": chinacrs.wgs84_to_bd09}


@lru_cache(maxsize=256)
def normalise_crs(spec: str | int) -> str:
    """'gcj02' → 'GCJ02', 'bd09' → 'BD09', '4490' → 'EPSG:4490'; raises UnknownCRS."""
    text = str(spec).strip()
    if text.lower() in CHINESE_SYSTEMS:
        return CHINESE_SYSTEMS[text.lower()]
    return crs_label(parse_crs(text))


def is_geographic(spec: str) -> bool:
    return spec in _TO_WGS84 or parse_crs(spec).is_geographic


def to_wgs84_xy(x: np.ndarray, y: np.ndarray, spec: str) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates in `spec` (normalised) → WGS84 longitude, latitude arrays."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if spec in _TO_WGS84:
        return _TO_WGS84[spec](x, y)
    if parse_crs(spec) == parse_crs(WGS84):
        return x, y
    return _transformer(spec, WGS84).transform(x, y)


def from_wgs84_xy(lon: np.ndarray, lat: np.ndarray, spec: str) -> tuple[np.ndarray, np.ndarray]:
    lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    if spec in _FROM_WGS84:
        return _FROM_WGS84[spec](lon, lat)
    if parse_crs(spec) == parse_crs(WGS84):
        return lon, lat
    return _transformer(WGS84, spec).transform(lon, lat)


# PROJ keywords and WKT elements that make PROJ read a file (init files, grids, parameter files).
_FILE_REFERENCE = re.compile(
    r"(init|nadgrids|geoidgrids|grids|file|filename|catalog)\s*=|parameterfile", re.IGNORECASE
)


@lru_cache(maxsize=256)
def parse_crs(spec: str | int) -> CRS:
    """Parse '4326', 'EPSG:4490', 'epsg:4549', a WKT or PROJ string into a pyproj CRS."""
    text = str(spec).strip()
    if text.isdigit():
        text = f"EPSG:{text}"
    if _FILE_REFERENCE.search(text):
        # A CRS comes from requests and files: PROJ must never open a path named in one.
        raise UnknownCRS(f"coordinate reference system {spec!r} refers to a file; not allowed")
    try:
        return CRS.from_user_input(text)
    except CRSError as error:
        raise UnknownCRS(f"unknown coordinate reference system {spec!r}") from error


def crs_label(crs: CRS) -> str:
    """'EPSG:4490' when the CRS has an EPSG code, else its name."""
    epsg = crs.to_epsg(min_confidence=70)
    return f"EPSG:{epsg}" if epsg else crs.name


def gauss_kruger_epsg(longitude: float) -> int:
    """EPSG code of the CGCS2000 3-degree Gauss-Kruger zone for a longitude inside China."""
    meridian = round(longitude / 3.0) * 3
    meridian = min(max(meridian, _GK_FIRST_MERIDIAN), _GK_LAST_MERIDIAN)
    return _GK_FIRST_EPSG + (meridian - _GK_FIRST_MERIDIAN) // 3


_local = threading.local()


@lru_cache(maxsize=256)
def _pipeline(source: str, target: str) -> str:
    """The operation PROJ chose for source → target, as a PROJ pipeline (chosen once per process)."""
    try:
        chosen = Transformer.from_crs(parse_crs(source), parse_crs(target), always_xy=True)
    except ProjError as error:  # another body's frame (the Moon's…): no way to the Earth's
        raise UnknownCRS(f"cannot transform {source!r} to {target!r}: {error}") from error
    return str(chosen.definition)


def _transformer(source: str, target: str) -> Transformer:
    """A Transformer per thread: pyproj re-initialises one used from another thread on every call.

    A new thread builds its copy from the process's chosen pipeline (~1 ms) instead of asking
    PROJ to choose again (~130 ms): a thread pool that grows under load must not stall on it."""
    cache = getattr(_local, "transformers", None)
    if cache is None:
        cache = _local.transformers = {}
    key = (source, target)
    if key not in cache:
        definition = _pipeline(source, target)
        try:
            cache[key] = Transformer.from_pipeline(definition)
        except ProjError:  # an operation PROJ cannot rebuild from its string: choose again
            cache[key] = Transformer.from_crs(parse_crs(source), parse_crs(target), always_xy=True)
    return cache[key]


def transform(geometries: np.ndarray | shapely.Geometry, source: str, target: str):
    """Reproject shapely geometries (x = longitude/easting order) from source to target CRS.

    Either side may be GCJ02 or BD09 (converted through WGS84).
    """
    source, target = normalise_crs(source), normalise_crs(target)
    if source == target:
        return geometries
    if source in _TO_WGS84 or target in _TO_WGS84:

        def _chinese(coords: np.ndarray) -> np.ndarray:
            lon, lat = to_wgs84_xy(coords[:, 0], coords[:, 1], source)
            return np.column_stack(from_wgs84_xy(lon, lat, target))

        return shapely.transform(geometries, _chinese)
    if parse_crs(source) == parse_crs(target):
        return geometries
    transformer = _transformer(source, target)

    def _apply(coords: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geometries, _apply)


def metric_crs_for(geometries: np.ndarray | shapely.Geometry) -> str:
    """The Gauss-Kruger zone for WGS84 geometries, chosen from the centre of their extent."""
    xmin, _, xmax, _ = shapely.total_bounds(geometries)
    return f"EPSG:{gauss_kruger_epsg((xmin + xmax) / 2.0)}"


def areas_m2(geometries: np.ndarray) -> np.ndarray:
    """Areas in square metres of WGS84 geometries, measured in their Gauss-Kruger zone."""
    if len(geometries) == 0:
        return np.zeros(0)
    return shapely.area(transform(geometries, WGS84, metric_crs_for(geometries)))


def coordinate_problems(x: np.ndarray, y: np.ndarray, spec: str) -> list[str | None]:
    """Why each input coordinate cannot be right (None when it can): for clear 422s."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    problems: list[str | None] = [None] * len(x)
    geographic = is_geographic(spec)
    for i in np.flatnonzero(~(np.isfinite(x) & np.isfinite(y))):
        problems[i] = "坐标不是有效数字"
    if geographic:
        swapped = (
            (np.abs(y) > 90) & (np.abs(x) <= 90) & (y >= 73) & (y <= 136) & (x >= 3) & (x <= 54)
        )
        for i in np.flatnonzero(swapped):
            problems[i] = f"经纬度疑似颠倒：lon={x[i]} 像纬度，lat={y[i]} 像经度"
        outside = (
            ((np.abs(x) > 180) | (np.abs(y) > 90)) & ~swapped & np.isfinite(x) & np.isfinite(y)
        )
        for i in np.flatnonzero(outside):
            problems[i] = f"坐标超出范围：经度应在 -180..180，纬度应在 -90..90（{spec}）"
    else:
        valid = np.array([p is None for p in problems])
        lon, lat = np.full(len(x), np.nan), np.full(len(x), np.nan)
        if valid.any():
            lon[valid], lat[valid] = to_wgs84_xy(x[valid], y[valid], spec)
        bad = valid & ~(np.isfinite(lon) & (np.abs(lon) <= 180) & (np.abs(lat) <= 90))
        for i in np.flatnonzero(bad):
            problems[i] = f"坐标在 {spec} 中超出有效范围（是否给错了坐标系？）"
    return problems
