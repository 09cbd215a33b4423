"""Buildings and monitoring points (read)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from api.db.generations import generation_at
from api.db.layers import find_features
from api.deps import ConnectionDep, ReaderDep
from api.routes.params import BBoxDep, PageDep

router = APIRouter(tags=["buildings and monitoring points"])
GEOJSON: dict[str, Any] = {"content": {"application/geo+json": {}}}
GridFilter = Annotated[
    str | None, Query(description="Only features in this grid (active generation)")
]


@router.get("/buildings", summary="Buildings as GeoJSON", responses={200: GEOJSON})
def buildings(
    connection: ConnectionDep, _: ReaderDep, bbox: BBoxDep, page: PageDep, grid: GridFilter = None
) -> dict[str, Any]:
    generation = generation_at(connection) if grid else None
    return find_features(
        connection, "buildings", bbox=bbox, grid_code=grid, generation=generation, page=page
    )


@router.get(
    "/points", summary="Monitoring points (cameras, sensors) as GeoJSON", responses={200: GEOJSON}
)
def points(
    connection: ConnectionDep,
    _: ReaderDep,
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
    return find_features(
        connection,
        "points",
        bbox=bbox,
        grid_code=grid,
        generation=generation,
        equals=equals,
        page=page,
    )
