"""The one tile matrix set served (WebMercatorQuad), tile addresses, and the zooms each
collection is drawn at.

Why these minimum zooms: at zoom z a 256-px tile spans 40,075 km / 2^z (×cos 31° ≈ 0.86 in
Jiangsu). A micro-grid (微网格, ~100–150 m across) is 7–10 px wide at z13 and a building
(~20 m) 5 px at z15; below those zooms they would be specks, and one tile of a 25,000-micro-grid
district at z12 would carry ~4,000 of them. Grids (~1 km) read from z11, communities from z9,
the street outline from z6; monitoring points from z12 and events from z13 (a z12 tile of the
demo street's 3,000 events is ~450 KB). Clients over-zoom past MAX_ZOOM (the z16 tile's 4096-unit grid is
~0.5 m there).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import morecantile

from api.errors import NotFound
from api.ogc.collections import Collection

WEB_MERCATOR_QUAD = morecantile.tms.get("WebMercatorQuad")
TMS_ID = "WebMercatorQuad"
TMS_URI = "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad"
CRS_3857 = "http://www.opengis.net/def/crs/EPSG/0/3857"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
MVT_MEDIA_TYPE = "application/vnd.mapbox-vector-tile"
EXTENT = 4096  # MVT units across a tile
BUFFER = 64  # units drawn beyond the edge, so outlines do not show tile seams
MAX_ZOOM = 16  # tiles are generated up to here; clients over-zoom beyond
TOP_ZOOM = 24  # the deepest tile matrix of WebMercatorQuad we answer at all

# The coarsest zoom at which a grid level is drawn; levels not named here (a deployment's own):
OTHER_LEVEL_MIN_ZOOM = 12
LEVEL_MIN_ZOOM = {"street": 6, "community": 9, "grid": 11, "micro_grid": 13}
KIND_MIN_ZOOM = {"buildings": 15, "monitoring-points": 12, "events": 13}


@dataclass(frozen=True)
class TileAddress:
    z: int
    x: int
    y: int


XYZ_NAMES = ("path.z", "path.x", "path.y")
OGC_NAMES = ("path.tileMatrix", "path.tileCol", "path.tileRow")


def tile_address(z: int, x: int, y: int, names: tuple[str, str, str] = XYZ_NAMES) -> TileAddress:
    """A tile of WebMercatorQuad, or NotFound (404, as OGC API – Tiles asks for a tile outside
    the matrix set) naming the parameter at fault."""
    if not 0 <= z <= TOP_ZOOM:
        raise NotFound(
            f"缩放级别须在 0–{TOP_ZOOM} 之间，收到 {z}", code="tile_out_of_range", where=names[0]
        )
    size = 1 << z
    for where, value in ((names[1], x), (names[2], y)):
        if not 0 <= value < size:
            raise NotFound(
                f"第 {z} 级的行列号须在 0–{size - 1} 之间，收到 {value}",
                code="tile_out_of_range",
                where=where,
            )
    return TileAddress(z, x, y)


def min_zoom(collection: Collection) -> int:
    """The coarsest zoom a collection is drawn at (a draft: its coarsest level's)."""
    if collection.kind == "grids":
        return LEVEL_MIN_ZOOM.get(collection.level or "", OTHER_LEVEL_MIN_ZOOM)
    if collection.kind == "draft-grids":
        return min(LEVEL_MIN_ZOOM.values())
    return KIND_MIN_ZOOM[collection.kind]


def level_min_zoom_sql() -> str:
    """A constant SQL CASE giving each grid row's minimum zoom (for drafts, whose one
    collection holds every level)."""
    arms = " ".join(f"WHEN '{name}' THEN {zoom}" for name, zoom in LEVEL_MIN_ZOOM.items())
    return f"CASE t.level {arms} ELSE {OTHER_LEVEL_MIN_ZOOM} END"


def tile_width_m(z: int) -> float:
    """Width of a tile in Web Mercator metres (true metres × 1/cos(latitude))."""
    return 2 * math.pi * 6378137.0 / (1 << z)


def tile_centre_lonlat(address: TileAddress) -> tuple[float, float]:
    bounds = WEB_MERCATOR_QUAD.bounds(morecantile.Tile(address.x, address.y, address.z))
    return (bounds.left + bounds.right) / 2, (bounds.bottom + bounds.top) / 2


def tile_matrix_limits(
    bbox: tuple[float, float, float, float] | None, minzoom: int, maxzoom: int
) -> list[dict[str, object]]:
    """tileMatrixSetLimits of OGC API – Tiles: the rows and columns holding data, per zoom."""
    if bbox is None:
        return []
    limits: list[dict[str, object]] = []
    for z in range(minzoom, maxzoom + 1):
        upper_left = WEB_MERCATOR_QUAD.tile(bbox[0], bbox[3], z)
        lower_right = WEB_MERCATOR_QUAD.tile(bbox[2], bbox[1], z)
        limits.append(
            {
                "tileMatrix": str(z),
                "minTileRow": upper_left.y,
                "maxTileRow": lower_right.y,
                "minTileCol": upper_left.x,
                "maxTileCol": lower_right.x,
            }
        )
    return limits
