"""Buildings and monitoring points (read)."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import shapely
from fastapi import APIRouter, Query

from api.db.generations import generation_at
from api.db.layers import find_features
from api.deps import CallerDep, ConnectionDep, NoNulCharacters
from api.errors import error_responses
from api.privacy import without_attributes
from api.routes.params import BBoxDep, PageDep
from spatial.crs import transform

router = APIRouter(
    tags=["buildings and monitoring points"],
    responses=error_responses(401, 404, 422, 503),
    dependencies=[NoNulCharacters],
)
GEOJSON: dict[str, Any] = {"content": {"application/geo+json": {}}}
GridFilter = Annotated[
    str | None, Query(description="Only features in this grid (active generation)")
]
OutCrs = Annotated[
    Literal["EPSG:4326", "gcj02", "bd09"],
    Query(
        description="Coordinates of the answer: gcj02 lines up with AMap/Tencent tiles, bd09 with Baidu"
    ),
]


def reproject(collection: dict[str, Any], out_crs: str) -> dict[str, Any]:
    """Shift every feature's geometry for Chinese web-map tiles (the bbox filter stays WGS84)."""
    if out_crs == "EPSG:4326":
        return collection
    for feature in collection["features"]:
        if feature["geometry"] is None:  # an event that could not be placed
            continue
        geometry = transform(
            shapely.from_geojson(json.dumps(feature["geometry"])), "EPSG:4326", out_crs
        )
        feature["geometry"] = json.loads(shapely.to_geojson(geometry))
    return collection


@router.get("/buildings", summary="Buildings as GeoJSON", responses={200: GEOJSON})
def buildings(
    connection: ConnectionDep,
    caller: CallerDep,
    bbox: BBoxDep,
    page: PageDep,
    grid: GridFilter = None,
    out_crs: OutCrs = "EPSG:4326",
) -> dict[str, Any]:
    generation = generation_at(connection) if grid else None
    found = find_features(
        connection, "buildings", bbox=bbox, grid_code=grid, generation=generation, page=page
    )
    return reproject(without_attributes(found, caller), out_crs)


@router.get(
    "/points", summary="Monitoring points (cameras, sensors) as GeoJSON", responses={200: GEOJSON}
)
def points(
    connection: ConnectionDep,
    caller: CallerDep,
    bbox: BBoxDep,
    page: PageDep,
    grid: GridFilter = None,
    kind: Literal["camera", "sensor"] | None = None,
    status: Literal["online", "offline", "fault"] | None = None,
) -> dict[str, Any]:
    equals: dict[str, str] = {
        k: v for k, v in {"kind": kind, "status": status}.items() if v is not None
    }
    generation = generation_at(connection) if grid else None
    found = find_features(
        connection,
        "points",
        bbox=bbox,
        grid_code=grid,
        generation=generation,
        equals=equals,
        page=page,
    )
    return without_attributes(found, caller)
