"""Query parameters shared by read endpoints, parsed once with clear errors."""

from __future__ import annotations

import json
import math
from typing import Annotated, Any

import shapely
from fastapi import Depends, Query
from sqlalchemy import Connection

from api.db import grids as grid_queries
from api.db.filters import BBox, Page
from api.db.generations import generation_at, generation_exists
from api.deps import ConnectionDep, SettingsDep
from api.errors import InvalidInput, NotFound
from api.times import Instant
from spatial.crs import WGS84, transform


def parse_bbox(value: str | None) -> BBox | None:
    if value is None or value == "":
        return None
    parts = value.split(",")
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        numbers = []
    if len(numbers) != 4 or not all(math.isfinite(n) for n in numbers):
        raise InvalidInput(
            "bbox 应为四个数字：最小经度,最小纬度,最大经度,最大纬度（WGS84）",
            code="invalid_bbox",
            where="query.bbox",
        )
    minx, miny, maxx, maxy = numbers
    if not (-180 <= minx < maxx <= 180 and -90 <= miny < maxy <= 90):
        raise InvalidInput(
            f"bbox 超出范围或次序颠倒：{value}（经度 -180..180，纬度 -90..90，最小值在前）",
            code="invalid_bbox",
            where="query.bbox",
        )
    return BBox(minx, miny, maxx, maxy)


def bbox_param(
    bbox: Annotated[
        str | None,
        Query(
            description="WGS84 bounding box: min_lon,min_lat,max_lon,max_lat",
            examples=["120.72,31.29,120.75,31.32"],
        ),
    ] = None,
) -> BBox | None:
    return parse_bbox(bbox)


def generation_param(
    connection: ConnectionDep,
    generation: Annotated[int | None, Query(description="Generation id (default: active)")] = None,
    at: Annotated[
        Instant | None,
        Query(description="ISO-8601 time: use the generation active then"),
    ] = None,
) -> int:
    if generation is not None and at is not None:
        raise InvalidInput(
            "generation 与 at 只能给一个", code="conflicting_parameters", where="query.generation"
        )
    if generation is not None:
        return _existing_generation(connection, generation)
    return generation_at(connection, at)


def _existing_generation(connection: Connection, generation: int) -> int:
    if not generation_exists(connection, generation):
        raise NotFound(
            f"没有第 {generation} 版网格", code="generation_not_found", where="query.generation"
        )
    return generation


def page_param(
    settings: SettingsDep,
    limit: Annotated[int | None, Query(ge=1, description="Page size (capped by settings)")] = None,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> Page:
    cap = settings.limits.max_page_size
    if limit is not None and limit > cap:
        raise InvalidInput(f"limit 最大为 {cap}", code="limit_too_large", where="query.limit")
    return Page(limit or settings.limits.default_page_size, offset)


BBoxDep = Annotated[BBox | None, Depends(bbox_param)]
GenerationDep = Annotated[int, Depends(generation_param)]
PageDep = Annotated[Page, Depends(page_param)]


def geometry_from_geojson(
    geojson: dict[str, Any], where: str, crs: str = "EPSG:4326"
) -> shapely.Geometry:
    """A request's GeoJSON geometry in WGS84 (drawn on GCJ-02 or BD-09 tiles, it is converted
    back), or 422 `invalid_geometry` naming where it came from."""
    try:
        geometry = shapely.from_geojson(json.dumps(geojson))
    except Exception as error:  # shapely raises GEOSException for malformed GeoJSON
        raise InvalidInput(
            f"不是有效的 GeoJSON 几何：{error}", code="invalid_geometry", where=where
        ) from error
    if geometry is None or geometry.is_empty:
        raise InvalidInput("几何为空", code="invalid_geometry", where=where)
    return geometry if crs == "EPSG:4326" else transform(geometry, crs, WGS84)


def known_level(connection: Connection, level: str, where: str = "query.level") -> list[str]:
    """The level catalogue (names, top down), after checking `level` is in it: 422
    `level_not_found` otherwise — the one check every route and page uses."""
    names = [lv["name"] for lv in grid_queries.levels(connection)]
    if level not in names:
        raise InvalidInput(
            f"没有名为 {level} 的层级（现有：{', '.join(names)}）",
            code="level_not_found",
            where=where,
        )
    return names
