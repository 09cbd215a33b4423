"""Grids, levels and generations (read)."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy import Connection

from api.db import grids as grid_queries
from api.db.drafts import draft_version_of
from api.db.generations import generation_at, list_generations
from api.deps import (
    CallerDep,
    ConnectionDep,
    IndexStoreDep,
    NoNulCharacters,
    PersonalDataDep,
    ReaderDep,
)
from api.errors import Forbidden, NotFound, error_responses
from api.privacy import Caller, feature_without_attributes, without_attributes
from api.routes.layers import OutCrs, reproject
from api.routes.params import BBoxDep, GenerationDep, PageDep, known_level

router = APIRouter(
    tags=["grids"],
    responses=error_responses(401, 403, 404, 422, 503),
    dependencies=[NoNulCharacters],
)
GEOJSON: dict[str, Any] = {"content": {"application/geo+json": {}}}


@router.get("/generations", summary="Boundary versions and which one is active")
def generations(connection: ConnectionDep, _: ReaderDep) -> dict[str, Any]:
    items = list_generations(connection)
    try:
        active: int | None = generation_at(connection)
    except LookupError:
        active = None
    return {
        "active": active,
        "generations": [
            {
                "id": g.id,
                "description": g.description,
                "created_at": g.created_at,
                "last_activated_at": g.activated_at,
                "active": g.id == active,
            }
            for g in items
        ],
    }


def _etag(request: Request, generation: int, draft_version: int | None, caller: Caller) -> str:
    """A published generation's rows never change, and a draft's change only with its version:
    generation (+ draft version) + query + what the caller may see identify the answer."""
    key = f"{request.url.path}?{request.url.query}|{caller.sees_all_personal}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    version = "" if draft_version is None else f"v{draft_version}"
    return f'W/"g{generation}{version}-{digest}"'


def _cached(
    request: Request,
    response: Response,
    connection: Connection,
    generation: int,
    caller: Caller,
) -> Response | None:
    etag = _etag(request, generation, draft_version_of(connection, generation), caller)
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"ETag": etag})
    response.headers["ETag"] = etag
    response.headers["Cache-Control"] = "no-cache, private"  # a publish must show at once
    return None


@router.get(
    "/grids", summary="Grids as GeoJSON (ETag per generation)", responses={200: GEOJSON, 304: {}}
)
def list_grids(
    request: Request,
    response: Response,
    connection: ConnectionDep,
    caller: CallerDep,
    generation: GenerationDep,
    bbox: BBoxDep,
    page: PageDep,
    level: Annotated[str | None, Query(description="street, community, grid, micro_grid …")] = None,
    parent: Annotated[str | None, Query(description="Only children of this grid code")] = None,
    out_crs: OutCrs = "EPSG:4326",
) -> dict[str, Any]:
    if (not_modified := _cached(request, response, connection, generation, caller)) is not None:
        return not_modified  # type: ignore[return-value]
    if level is not None:
        known_level(connection, level)
    found = grid_queries.find_grids(
        connection, generation, level=level, parent_code=parent, bbox=bbox, page=page
    )
    return reproject(without_attributes(found, caller), out_crs)


@router.get(
    "/grids/{code}", summary="One grid with its path up the hierarchy", responses={200: GEOJSON}
)
def get_grid(
    code: str, connection: ConnectionDep, caller: CallerDep, generation: GenerationDep
) -> dict[str, Any]:
    found = grid_queries.get_grid(connection, code, generation)
    if found is None:
        raise NotFound(
            f"第 {generation} 版中没有编码为 {code} 的网格",
            code="grid_not_found",
            where="path.code",
        )
    return feature_without_attributes(found, caller)


@router.get(
    "/grids/{code}/staff",
    summary="Today's staff on a grid of the active generation, with contacts (personal data)",
)
def grid_staff(
    code: str, store: IndexStoreDep, connection: ConnectionDep, principal: PersonalDataDep
) -> dict[str, Any]:
    path = store.active_path(code)
    if not path:
        raise NotFound(
            f"现行网格版本中没有编码为 {code} 的网格", code="grid_not_found", where="path.code"
        )
    if not Caller(principal).sees_personal(path):
        raise Forbidden(
            "网格员令牌只能查看本人负责网格（及其下级）的人员信息",
            code="outside_token_scope",
            where="path.code",
        )
    return {"code": code, "staff": grid_queries.staff_for_grid(connection, code)}
