"""Coordinate reference systems: parsing what users type, reprojecting, choosing a metric zone.

Storage is EPSG:4326. CGCS2000 (EPSG:4490) equals WGS84 within centimetres and PROJ treats the
two as the same datum, so 4490 input passes through unchanged. Lengths and areas are measured
in the CGCS2000 3-degree Gauss-Kruger zone whose central meridian is nearest the data
(EPSG:4534 = 75°E … EPSG:4554 = 135°E), never in degrees.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError

WGS84 = "EPSG:4326"
_GK_FIRST_EPSG = 4534  # CGCS2000 / 3-degree Gauss-Kruger CM 75E
_GK_FIRST_MERIDIAN = 75
_GK_LAST_MERIDIAN = 135


class UnknownCRS(ValueError):
    """A CRS string PROJ does not know."""


@lru_cache(maxsize=256)
def parse_crs(spec: str | int) -> CRS:
    """Parse '4326', 'EPSG:4490', 'epsg:4549', a WKT or PROJ string into a pyproj CRS."""
    text = str(spec).strip()
    if text.isdigit():
        text = f"EPSG:{text}"
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


@lru_cache(maxsize=256)
def _transformer(source: str, target: str) -> Transformer:
    return Transformer.from_crs(parse_crs(source), parse_crs(target), always_xy=True)


def transform(geometries: np.ndarray | shapely.Geometry, source: str, target: str):
    """Reproject shapely geometries (x = longitude/easting order) from source to target CRS."""
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
