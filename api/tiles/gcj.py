"""Tiles for the AMap basemap (`?crs=gcj02`, a documented extension, never the default).

AMap draws its tiles in GCJ-02, which moves WGS84 by a few hundred metres. The shift is smooth
but not constant: its shortest terms have a period of 1/3 degree and move it ~2.6 m per km, so a
pure translation by the offset at a tile's centre errs by ~12 m at a z12 tile's corners and
0.4 m at z16. Each tile is therefore drawn through the first-order (affine) expansion of the
GCJ-02 formula at its centre, applied by PostGIS (`ST_Affine`) to the stored geometry: the
error left over the demo street is 4.8 m at z12 corners, 1.4 m at z13, 0.3 m at z14 and 2 cm
at z16 (`affine_error_m`, measured in tests/test_tiles.py): under 0.15 of a 256-px tile's
pixel at every zoom (a pixel is 38 m at z12, 2.4 m at z16).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import morecantile
import numpy as np

from api.tiles.matrix import WEB_MERCATOR_QUAD, TileAddress
from spatial.crs import from_wgs84_xy, to_wgs84_xy

EARTH_RADIUS_M = 6371008.8


@dataclass(frozen=True)
class Affine:
    """x' = a·x + b·y + xoff, y' = d·x + e·y + yoff (degrees), as ST_Affine takes them."""

    a: float
    b: float
    d: float
    e: float
    xoff: float
    yoff: float

    def apply(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (
            self.a * lon + self.b * lat + self.xoff,
            self.d * lon + self.e * lat + self.yoff,
        )

    @property
    def params(self) -> dict[str, float]:
        return {f"gcj_{k}": getattr(self, k) for k in ("a", "b", "d", "e", "xoff", "yoff")}


def _bounds(address: TileAddress) -> morecantile.models.BoundingBox:
    return WEB_MERCATOR_QUAD.bounds(morecantile.Tile(address.x, address.y, address.z))


def tile_affine(address: TileAddress) -> Affine:
    """WGS84 → GCJ-02 linearised at the WGS84 point that lands on the tile's centre."""
    bounds = _bounds(address)
    centre_lon = np.array([(bounds.left + bounds.right) / 2])
    centre_lat = np.array([(bounds.bottom + bounds.top) / 2])
    lon0, lat0 = (float(v[0]) for v in to_wgs84_xy(centre_lon, centre_lat, "GCJ02"))
    step_lon = (bounds.right - bounds.left) / 4
    step_lat = (bounds.top - bounds.bottom) / 4
    lons = np.array([lon0, lon0 + step_lon, lon0 - step_lon, lon0, lon0])
    lats = np.array([lat0, lat0, lat0, lat0 + step_lat, lat0 - step_lat])
    gx, gy = from_wgs84_xy(lons, lats, "GCJ02")
    # Central differences: the Jacobian of the forward formula at the centre.
    a = (gx[1] - gx[2]) / (2 * step_lon)
    d = (gy[1] - gy[2]) / (2 * step_lon)
    b = (gx[3] - gx[4]) / (2 * step_lat)
    e = (gy[3] - gy[4]) / (2 * step_lat)
    return Affine(
        a=float(a),
        b=float(b),
        d=float(d),
        e=float(e),
        xoff=float(gx[0] - a * lon0 - b * lat0),
        yoff=float(gy[0] - d * lon0 - e * lat0),
    )


def affine_error_m(address: TileAddress, samples: int = 9) -> float:
    """The largest distance, over a grid of points across the tile, between where the tile's
    affine map puts a WGS84 point and its exact GCJ-02 position."""
    bounds = _bounds(address)
    lon, lat = np.meshgrid(
        np.linspace(bounds.left, bounds.right, samples),
        np.linspace(bounds.bottom, bounds.top, samples),
    )
    wgs_lon, wgs_lat = to_wgs84_xy(lon.ravel(), lat.ravel(), "GCJ02")
    approx_lon, approx_lat = tile_affine(address).apply(wgs_lon, wgs_lat)
    east = (approx_lon - lon.ravel()) * math.cos(math.radians(float(lat.mean())))
    north = approx_lat - lat.ravel()
    return float(np.max(np.hypot(east, north)) * math.pi / 180 * EARTH_RADIUS_M)
