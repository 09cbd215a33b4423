"""The tile query: one ST_AsMVT over a collection's constant source SQL (api/ogc/collections.py).

Every value is bound; identifiers (property names, their SQL) come from the collection's constant
column list. The tile's envelope is computed here in EPSG:4326 and handed to PostGIS as four
numbers, so the filter runs on the stored column's GiST index (the query geometry is projected,
never the column). Generalisation per zoom: a simplification of one pixel of a 512-px tile
(8 of the tile's 4096 units) in Web Mercator, then ST_AsMVTGeom's quantisation to 4096 units
(which also drops what collapsed) and clipping with a 64-unit buffer.
"""

from __future__ import annotations

from typing import Any

import morecantile
import numpy as np
from sqlalchemy import Connection, text

from api.ogc.collections import GEOMETRY_COLUMN, Collection, columns, source_sql
from api.tiles.gcj import tile_affine
from api.tiles.matrix import (
    BUFFER,
    EXTENT,
    WEB_MERCATOR_QUAD,
    TileAddress,
    level_min_zoom_sql,
    tile_width_m,
)
from spatial.crs import to_wgs84_xy

SIMPLIFY_PIXELS = 512  # the tolerance is a tile's width over this
INTEGER_IDS = {"events"}  # kinds whose feature id is an integer (MVT ids are unsigned integers)


def _filter_bbox(address: TileAddress, gcj02: bool) -> tuple[float, float, float, float]:
    """Lon/lat box of the stored data a tile may show (the tile and its buffer)."""
    bounds = WEB_MERCATOR_QUAD.xy_bounds(morecantile.Tile(address.x, address.y, address.z))
    pad = (bounds.right - bounds.left) * BUFFER / EXTENT
    xs = np.array([bounds.left - pad, bounds.right + pad])
    ys = np.array([bounds.bottom - pad, bounds.top + pad])
    west, south = WEB_MERCATOR_QUAD.lnglat(xs[0], ys[0])
    east, north = WEB_MERCATOR_QUAD.lnglat(xs[1], ys[1])
    lon, lat = np.array([west, east]), np.array([south, north])
    if gcj02:
        # The tile is drawn in GCJ-02: the stored (WGS84) data it shows lies back by the offset.
        corner_lon, corner_lat = np.meshgrid(lon, lat)
        lon, lat = to_wgs84_xy(corner_lon.ravel(), corner_lat.ravel(), "GCJ02")
    return float(np.min(lon)), float(np.min(lat)), float(np.max(lon)), float(np.max(lat))


def _as_tile_value(sql: str, json_type: str | None) -> str:
    """MVT values are strings, numbers or booleans: times travel as ISO 8601 UTC strings."""
    if json_type == "date-time":
        return f"""to_char(({sql}) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')"""
    return sql


def tile_sql(collection: Collection, gcj02: bool) -> str:
    """The constant SQL text of a collection's tile query."""
    source, _ = source_sql(collection)
    types = {p.name: p.type for p in collection.properties}
    properties = ", ".join(
        f'{_as_tile_value(sql, types.get(name))} AS "{name}"'
        for name, sql in columns(collection).items()
    )
    geometry = GEOMETRY_COLUMN
    if gcj02:
        geometry = f"ST_Affine({geometry}, :gcj_a, :gcj_b, :gcj_d, :gcj_e, :gcj_xoff, :gcj_yoff)"
    feature_id = "t.id AS __fid, " if collection.kind in INTEGER_IDS else ""
    level_zoom = f" AND :z >= {level_min_zoom_sql()}" if collection.kind == "draft-grids" else ""
    return (
        "SELECT ST_AsMVT(tile, :layer, :extent, '__geom'"
        + (", '__fid'" if feature_id else "")
        + ") FROM (SELECT "
        + feature_id
        + properties
        + ", ST_AsMVTGeom(ST_Simplify(ST_Transform("
        + geometry
        + ", 3857), :tolerance), ST_TileEnvelope(:z, :x, :y), :extent, :buffer, true) AS __geom "
        + f"FROM {source} AND {GEOMETRY_COLUMN} && "
        + "ST_MakeEnvelope(:west, :south, :east, :north, 4326)"
        + level_zoom
        # OFFSET 0 keeps the subquery whole, so each row's tile geometry is computed once, not
        # again by the outer filter (a building tile at z15: 25 → 17 ms).
        + " OFFSET 0) AS tile WHERE __geom IS NOT NULL"
    )


def render_tile(
    connection: Connection, collection: Collection, address: TileAddress, gcj02: bool = False
) -> bytes:
    """The MVT bytes of one tile (empty when nothing is in it)."""
    _, params = source_sql(collection)
    west, south, east, north = _filter_bbox(address, gcj02)
    bound: dict[str, Any] = {
        **params,
        "layer": collection.id,
        "extent": EXTENT,
        "buffer": BUFFER,
        "tolerance": tile_width_m(address.z) / SIMPLIFY_PIXELS,
        "z": address.z,
        "x": address.x,
        "y": address.y,
        "west": west,
        "south": south,
        "east": east,
        "north": north,
    }
    if gcj02:
        bound.update(tile_affine(address).params)
    tile = connection.execute(text(tile_sql(collection, gcj02)), bound).scalar()
    return bytes(tile) if tile else b""


def collection_bbox(
    connection: Connection, collection: Collection
) -> tuple[float, float, float, float] | None:
    """The lon/lat extent of a collection's geometries (None when it has none)."""
    source, params = source_sql(collection)
    row = connection.execute(
        text(
            f"SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
            f"(SELECT ST_Extent({GEOMETRY_COLUMN}) AS e FROM {source}) AS extent"
        ),
        params,
    ).one()
    return None if row[0] is None else (row[0], row[1], row[2], row[3])
