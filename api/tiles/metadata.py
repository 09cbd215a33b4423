"""TileJSON 3.0 and OGC API – Tiles documents (tile matrix sets, tileset lists, tilesets)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from api.ogc.collections import Collection
from api.tiles.matrix import (
    CRS84,
    CRS_3857,
    MVT_MEDIA_TYPE,
    TMS_ID,
    TMS_URI,
    WEB_MERCATOR_QUAD,
    min_zoom,
    tile_matrix_limits,
)
from api.tiles.service import max_zoom

TILING_SCHEME = "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme"
JSON = "application/json"
WORLD = (-180.0, -85.0511287798066, 180.0, 85.0511287798066)
BBox = tuple[float, float, float, float] | None
_JSON_TYPES = {"date-time": {"type": "string", "format": "date-time"}}


def _query(crs: str | None) -> str:
    return "?crs=gcj02" if crs else ""


def _tileset_url(base: str, collection: Collection) -> str:
    return f"{base}ogc/collections/{quote(collection.id)}/tiles/{TMS_ID}"


def _centre(bbox: BBox, zoom: int) -> list[float]:
    west, south, east, north = bbox or WORLD
    return [round((west + east) / 2, 7), round((south + north) / 2, 7), zoom]


def tilejson(collection: Collection, bbox: BBox, base: str, crs: str | None) -> dict[str, Any]:
    """TileJSON 3.0.0 of one collection (`base` ends with a slash)."""
    low, high = min_zoom(collection), max_zoom(collection)
    tiles = f"{base}tiles/{quote(collection.id)}/{{z}}/{{x}}/{{y}}.mvt{_query(crs)}"
    return {
        "tilejson": "3.0.0",
        "name": collection.title,
        "description": collection.description,
        "version": "1.0.0",
        "attribution": "wangge 网格化管理",
        "scheme": "xyz",
        "tiles": [tiles],
        "minzoom": low,
        "maxzoom": high,
        "bounds": [round(v, 7) for v in (bbox or WORLD)],
        "center": _centre(bbox, max(low, 14)),
        "vector_layers": [
            {
                "id": collection.id,
                "description": collection.description,
                "minzoom": low,
                "maxzoom": high,
                "fields": {p.name: p.description for p in collection.properties},
            }
        ],
    }


def tile_matrix_sets(base: str) -> dict[str, Any]:
    return {
        "tileMatrixSets": [
            {
                "id": TMS_ID,
                "title": "Google Maps Compatible for the World",
                "uri": TMS_URI,
                "links": [
                    {
                        "rel": "self",
                        "type": JSON,
                        "title": "WebMercatorQuad",
                        "href": f"{base}ogc/tileMatrixSets/{TMS_ID}",
                    }
                ],
            }
        ],
        "links": [{"rel": "self", "type": JSON, "href": f"{base}ogc/tileMatrixSets"}],
    }


def tile_matrix_set(base: str) -> dict[str, Any]:
    """WebMercatorQuad as OGC Two Dimensional Tile Matrix Set 2.0 JSON (from morecantile)."""
    document = WEB_MERCATOR_QUAD.model_dump(mode="json", exclude_none=True)
    document["links"] = [
        {"rel": "self", "type": JSON, "href": f"{base}ogc/tileMatrixSets/{TMS_ID}"}
    ]
    return document


def _tileset_links(base: str, collection: Collection) -> list[dict[str, Any]]:
    return [
        {"rel": "self", "type": JSON, "href": _tileset_url(base, collection)},
        {
            "rel": TILING_SCHEME,
            "type": JSON,
            "title": "WebMercatorQuad",
            "href": f"{base}ogc/tileMatrixSets/{TMS_ID}",
        },
    ]


def tilesets(base: str, collection: Collection) -> dict[str, Any]:
    """The tilesets list of one collection (one: vector tiles on WebMercatorQuad)."""
    return {
        "links": [
            {
                "rel": "self",
                "type": JSON,
                "href": f"{base}ogc/collections/{quote(collection.id)}/tiles",
            },
            {
                "rel": "collection",
                "type": JSON,
                "href": f"{base}ogc/collections/{quote(collection.id)}",
            },
        ],
        "tilesets": [
            {
                "title": collection.title,
                "dataType": "vector",
                "crs": CRS_3857,
                "tileMatrixSetURI": TMS_URI,
                "links": _tileset_links(base, collection),
            }
        ],
    }


def tileset(base: str, collection: Collection, bbox: BBox, crs: str | None) -> dict[str, Any]:
    """OGC API – Tiles tileset metadata (2D Tile Matrix Set and Tileset Metadata 2.0)."""
    low, high = min_zoom(collection), max_zoom(collection)
    west, south, east, north = bbox or WORLD
    schema = {
        p.name: {**_JSON_TYPES.get(p.type, {"type": p.type}), "description": p.description}
        for p in collection.properties
    }
    url = _tileset_url(base, collection)
    return {
        "title": collection.title,
        "description": collection.description,
        "dataType": "vector",
        "crs": CRS_3857,
        "tileMatrixSetURI": TMS_URI,
        "links": [
            *_tileset_links(base, collection),
            {
                "rel": "item",
                "type": MVT_MEDIA_TYPE,
                "title": "Mapbox Vector Tile",
                "href": f"{url}/{{tileMatrix}}/{{tileRow}}/{{tileCol}}{_query(crs)}",
                "templated": True,
            },
            {
                "rel": "collection",
                "type": JSON,
                "href": f"{base}ogc/collections/{quote(collection.id)}",
            },
        ],
        "tileMatrixSetLimits": tile_matrix_limits(bbox, low, high),
        "boundingBox": {"lowerLeft": [west, south], "upperRight": [east, north], "crs": CRS84},
        "centerPoint": {
            "coordinates": _centre(bbox, 0)[:2],
            "tileMatrix": str(max(low, 14)),
            "crs": CRS84,
        },
        "layers": [
            {
                "id": collection.id,
                "title": collection.title,
                "description": collection.description,
                "dataType": "vector",
                "geometryDimension": 0 if collection.geometry_type == "Point" else 2,
                "minTileMatrix": str(low),
                "maxTileMatrix": str(high),
                "propertiesSchema": {"type": "object", "properties": schema},
            }
        ],
    }
