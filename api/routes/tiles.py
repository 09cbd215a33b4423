"""Vector tiles: /tiles/{collection}/{z}/{x}/{y}.mvt, TileJSON, and OGC API – Tiles under /ogc.

Tiles are Mapbox Vector Tiles on WebMercatorQuad, one layer per tile named after the collection,
holding the collection's public properties only. An empty tile is answered 204 No Content (OGC
API – Tiles allows it for a tile without data; GDAL, Leaflet.VectorGrid and MapLibre read it as
an empty tile). `?crs=gcj02` draws a tile in GCJ-02 for the AMap basemap (api/tiles/gcj.py).
"""

from __future__ import annotations

import gzip
import threading
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from api.db.generations import NoActiveGeneration
from api.deps import CallerDep, NoNulCharacters
from api.errors import NotFound, error_responses
from api.ogc.collections import resolve
from api.privacy import Caller
from api.replica import ReplicaConnectionDep, is_draft_collection, read_source
from api.settings import Settings
from api.tiles import metadata
from api.tiles.matrix import (
    MVT_MEDIA_TYPE,
    OGC_NAMES,
    TMS_ID,
    TOP_ZOOM,
    TileAddress,
    tile_address,
)
from api.tiles.service import Tile, TileService, datum

router = APIRouter(
    tags=["vector tiles"],
    # Bad requests on /ogc and /tiles are 400 (the OGC exception shape, api/ogc/errors.py).
    responses=error_responses(400, 401, 404, 422, 503),
    dependencies=[NoNulCharacters],
)
MVT: dict[str, Any] = {"content": {MVT_MEDIA_TYPE: {}}}
Crs = Annotated[
    str | None,
    Query(
        description="Extension: `gcj02` draws the tile in GCJ-02 for AMap (高德) basemaps. "
        "Default: WGS84 data on Web Mercator (天地图, OSM)."
    ),
]
IfNoneMatch = Annotated[str | None, Header(include_in_schema=False)]
_service_lock = threading.Lock()


def _service(request: Request) -> TileService:
    """The app's tile service (made on first use: the router needs nothing else wired)."""
    state = request.app.state
    with _service_lock:
        if getattr(state, "tile_service", None) is None:
            settings: Settings = state.settings
            state.tile_service = TileService(settings.tiles.cache_bytes)
    return state.tile_service


def _base(request: Request) -> str:
    return str(request.base_url)


def _tile_response(request: Request, tile: Tile) -> Response:
    settings: Settings = request.app.state.settings
    if tile.collection.kind == "draft-grids":
        cache = "private, no-cache"  # an edit changes it at once
    else:
        scope = "private" if settings.auth.require_token_for_reads else "public"
        cache = f"{scope}, max-age={settings.tiles.max_age_seconds}"
    headers = {"ETag": tile.etag, "Cache-Control": cache}
    if tile.body is None:
        return Response(status_code=304, headers=headers)
    if not tile.body:
        return Response(status_code=204, headers=headers)
    headers["Vary"] = "Accept-Encoding"
    if "gzip" in request.headers.get("accept-encoding", "").lower():
        headers["Content-Encoding"] = "gzip"
        return Response(tile.body, media_type=MVT_MEDIA_TYPE, headers=headers)
    return Response(gzip.decompress(tile.body), media_type=MVT_MEDIA_TYPE, headers=headers)


@router.get(
    "/tiles/{collection_id}/{z}/{x}/{y}.mvt",
    summary="矢量瓦片 (Mapbox Vector Tile, WebMercatorQuad); 204 when empty",
    responses={200: MVT, 204: {"description": "No feature in this tile"}, 304: {}},
)
async def xyz_tile(
    collection_id: str,
    z: int,
    x: int,
    y: int,
    request: Request,
    caller: CallerDep,
    crs: Crs = None,
    if_none_match: IfNoneMatch = None,
) -> Response:
    address = tile_address(z, x, y)
    return await _serve(request, caller, collection_id, address, datum(crs), if_none_match)


async def _serve(
    request: Request,
    caller: Caller,
    collection_id: str,
    address: TileAddress,
    crs: str | None,
    if_none_match: str | None,
) -> Response:
    """A cached grid tile of the active generation straight from memory, on the event loop (no
    thread, no connection: the index store knows the generation, kept current by NOTIFY on
    publish); anything else resolved and rendered in a worker thread."""
    service = _service(request)
    store = getattr(request.app.state, "index_store", None)
    try:
        generation = store.active().generation if store is not None else None
    except NoActiveGeneration:
        generation = None
    if generation is not None:
        tile = service.cached(collection_id, address, crs, generation, if_none_match)
        if tile is not None:
            return _tile_response(request, tile)

    def render() -> Tile:
        source = read_source(request.app)
        with source.connect(primary=is_draft_collection(collection_id)) as connection:
            return service.tile(connection, caller, collection_id, address, crs, if_none_match)

    return _tile_response(request, await run_in_threadpool(render))


@router.get("/tiles/{collection_id}/tilejson.json", summary="TileJSON 3.0 of a collection")
def tilejson(
    collection_id: str,
    request: Request,
    connection: ReplicaConnectionDep,
    caller: CallerDep,
    crs: Crs = None,
) -> dict[str, Any]:
    collection = resolve(connection, collection_id, caller)
    bbox = _service(request).extent(connection, collection)
    return metadata.tilejson(collection, bbox, _base(request), datum(crs))


@router.get("/ogc/tileMatrixSets", summary="OGC API – Tiles: tile matrix sets")
def tile_matrix_sets(request: Request) -> dict[str, Any]:
    return metadata.tile_matrix_sets(_base(request))


def _known_matrix_set(tile_matrix_set_id: str) -> None:
    if tile_matrix_set_id != TMS_ID:
        raise NotFound(
            f"只提供 {TMS_ID} 瓦片矩阵集，没有 {tile_matrix_set_id}",
            code="tile_matrix_set_not_found",
            where="path.tileMatrixSetId",
        )


@router.get("/ogc/tileMatrixSets/{tileMatrixSetId}", summary="OGC API – Tiles: a tile matrix set")
def tile_matrix_set(tileMatrixSetId: str, request: Request) -> dict[str, Any]:
    _known_matrix_set(tileMatrixSetId)
    return metadata.tile_matrix_set(_base(request))


@router.get(
    "/ogc/collections/{collectionId}/tiles", summary="OGC API – Tiles: a collection's tilesets"
)
def collection_tilesets(
    collectionId: str,
    request: Request,
    connection: ReplicaConnectionDep,
    caller: CallerDep,
) -> dict[str, Any]:
    return metadata.tilesets(_base(request), resolve(connection, collectionId, caller))


@router.get(
    "/ogc/collections/{collectionId}/tiles/{tileMatrixSetId}",
    summary="OGC API – Tiles: tileset metadata",
)
def collection_tileset(
    collectionId: str,
    tileMatrixSetId: str,
    request: Request,
    connection: ReplicaConnectionDep,
    caller: CallerDep,
    crs: Crs = None,
) -> dict[str, Any]:
    _known_matrix_set(tileMatrixSetId)
    collection = resolve(connection, collectionId, caller)
    bbox = _service(request).extent(connection, collection)
    return metadata.tileset(_base(request), collection, bbox, datum(crs))


def _tile_matrix(value: str) -> int:
    if not (value.isascii() and value.isdigit()) or int(value) > TOP_ZOOM:
        raise NotFound(
            f"{TMS_ID} 没有标识为 {value[:20]} 的瓦片矩阵（0–{TOP_ZOOM}）",
            code="tile_out_of_range",
            where="path.tileMatrix",
        )
    return int(value)


@router.get(
    "/ogc/collections/{collectionId}/tiles/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}",
    summary="OGC API – Tiles: a vector tile (row, then column); 204 when empty",
    responses={200: MVT, 204: {"description": "No feature in this tile"}, 304: {}},
)
async def ogc_tile(
    collectionId: str,
    tileMatrixSetId: str,
    tileMatrix: str,
    tileRow: int,
    tileCol: int,
    request: Request,
    caller: CallerDep,
    crs: Crs = None,
    if_none_match: IfNoneMatch = None,
) -> Response:
    _known_matrix_set(tileMatrixSetId)
    address = tile_address(_tile_matrix(tileMatrix), tileCol, tileRow, OGC_NAMES)
    return await _serve(request, caller, collectionId, address, datum(crs), if_none_match)
