"""OGC API – Features Part 4 on a draft's grids: POST, PUT, PATCH, DELETE and OPTIONS on
`/ogc/collections/drafts-{id}-grids/items[/{featureId}]` (api/ogc/transactions.py).

Reads (GET) of the same paths are api/routes/ogc.py's. Every write needs a planner's token and
the draft version (If-Match or `draft_version`), and answers with the new version's ETag.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from sqlalchemy import Connection

from api.auth import Permission, Principal
from api.deps import ConnectionDep, EngineDep, NoNulCharacters, PlannerDep, ReaderDep
from api.errors import ErrorBody, error_responses
from api.ogc import edit_input, transactions
from api.ogc.transactions import ITEM_ALLOW, ITEMS_ALLOW, READ_ALLOW, Write
from api.privacy import Caller

router = APIRouter(
    prefix="/ogc",
    tags=["ogc-features-edit"],
    responses={
        **error_responses(400, 401, 403, 404, 409, 413, 422, 503),
        **{
            status: {
                "model": ErrorBody,
                "description": description,
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}
                },
            }
            for status, description in (
                (405, "The collection is read-only (only drafts are edited)"),
                (412, "Stale draft version (If-Match or draft_version): read again, redo"),
                (415, "The body is neither JSON nor declared as JSON"),
                (428, "No draft version: send If-Match or draft_version"),
            )
        },
    },
    dependencies=[NoNulCharacters],
)

CollectionId = Annotated[
    str, Path(alias="collectionId", max_length=200, description="drafts-{draft id}-grids")
]
FeatureId = Annotated[str, Path(alias="featureId", max_length=64, description="Grid code")]
IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        max_length=2000,
        description='The draft version read: ETag "draft-{id}-v{version}" or "{version}"',
    ),
]
ContentCrs = Annotated[
    str | None,
    Header(
        alias="Content-Crs",
        max_length=300,
        description="CRS of the body (default CRS84), e.g. <http://www.opengis.net/def/crs/EPSG/0/4549>",
    ),
]
_WRITABLE = {
    "code": {"type": "string", "maxLength": 64},
    "name": {"type": "string", "minLength": 1, "maxLength": 200},
    "level": {"type": "string"},
    "kind": {"type": "string"},
    "parent_code": {"type": ["string", "null"]},
    "households": {"type": ["integer", "null"], "minimum": 0},
    "population": {"type": ["integer", "null"], "minimum": 0},
}
_FEATURE = {
    "type": "object",
    "required": ["type", "geometry", "properties"],
    "properties": {
        "type": {"type": "string", "enum": ["Feature"]},
        "id": {"type": "string"},
        "geometry": {"type": "object", "description": "GeoJSON Polygon or MultiPolygon"},
        "properties": {"type": "object", "properties": _WRITABLE, "required": ["name"]},
        "draft_version": {"type": "integer", "minimum": 0},
    },
}
_PATCH = {
    "type": "object",
    "properties": {
        "geometry": _FEATURE["properties"]["geometry"],  # type: ignore[index]
        "properties": {"type": "object", "properties": _WRITABLE},
        "draft_version": {"type": "integer", "minimum": 0},
    },
}


def _body(schema: dict[str, Any], *media: str) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {m: {"schema": schema} for m in media}}}


_GEOJSON = ("application/geo+json", "application/json")
_ETAG_HEADER = {"ETag": {"description": "The draft's new version", "schema": {"type": "string"}}}


async def raw_body(request: Request) -> bytes:
    return await request.body()


BodyDep = Annotated[bytes, Depends(raw_body)]


def _write(
    engine: EngineDep,
    principal: PlannerDep,
    collection_id: CollectionId,
    connection: ConnectionDep,
    if_match: IfMatch = None,
) -> Write:
    draft_id = transactions.draft_id_of(connection, collection_id, Caller(principal))
    return Write(engine, draft_id, principal.actor, if_match)


def _drawn(write: Annotated[Write, Depends(_write)], content_crs: ContentCrs = None) -> Write:
    """A write with a body: its coordinates' CRS too."""
    return replace(write, crs=edit_input.content_crs(content_crs))


WriteDep = Annotated[Write, Depends(_write)]
DrawnDep = Annotated[Write, Depends(_drawn)]


def _answer(response: Response, write: Write, result: dict[str, Any]) -> dict[str, Any]:
    response.headers["ETag"] = transactions.etag(write.draft_id, result["version"])
    return result


@router.post(
    "/collections/{collectionId}/items",
    status_code=201,
    summary="OGC API Features Part 4: create a grid in a draft (GeoJSON Feature)",
    openapi_extra=_body(_FEATURE, *_GEOJSON),
    responses={201: {"headers": {"Location": {"schema": {"type": "string"}}, **_ETAG_HEADER}}},
)
def create_item(
    request: Request,
    response: Response,
    write: DrawnDep,
    body: BodyDep,
    collection_id: CollectionId,
) -> dict[str, Any]:
    feature = edit_input.read_json(body, request.headers.get("content-type"))
    result = transactions.create(write, feature)
    code = quote(result["code"], safe="")
    response.headers["Location"] = (
        f"{request.base_url}ogc/collections/{quote(collection_id, safe='')}/items/{code}"
    )
    return _answer(response, write, result)


@router.put(
    "/collections/{collectionId}/items/{featureId}",
    summary="OGC API Features Part 4: replace a draft grid (outline reshaped, properties set)",
    openapi_extra=_body(_FEATURE, *_GEOJSON),
    responses={200: {"headers": _ETAG_HEADER}},
)
def replace_item(
    request: Request, response: Response, write: DrawnDep, body: BodyDep, feature_id: FeatureId
) -> dict[str, Any]:
    feature = edit_input.read_json(body, request.headers.get("content-type"))
    return _answer(response, write, transactions.replace(write, feature_id, feature))


@router.patch(
    "/collections/{collectionId}/items/{featureId}",
    summary="OGC API Features Part 4: update a draft grid (JSON merge patch)",
    openapi_extra=_body(_PATCH, "application/merge-patch+json", "application/json"),
    responses={200: {"headers": _ETAG_HEADER}},
)
def update_item(
    request: Request, response: Response, write: DrawnDep, body: BodyDep, feature_id: FeatureId
) -> dict[str, Any]:
    patch = edit_input.read_json(body, request.headers.get("content-type"))
    return _answer(response, write, transactions.update(write, feature_id, patch))


@router.delete(
    "/collections/{collectionId}/items/{featureId}",
    summary="OGC API Features Part 4: delete a draft grid (its area is left uncovered)",
    responses={200: {"headers": _ETAG_HEADER}},
)
def delete_item(
    response: Response,
    write: WriteDep,
    feature_id: FeatureId,
    with_children: bool = False,
    draft_version: Annotated[
        int | None, Query(ge=0, le=999_999_999, description="Instead of If-Match")
    ] = None,
) -> dict[str, Any]:
    result = transactions.delete(write, feature_id, with_children, draft_version)
    return _answer(response, write, result)


def _allow(
    connection: Connection, principal: Principal | None, collection_id: str, full: tuple[str, ...]
) -> tuple[int | None, Response]:
    """The draft (None for a read-only collection) and the answer naming what this caller may do."""
    draft_id = transactions.writable_draft(connection, collection_id, Caller(principal))
    writes = (
        draft_id is not None and principal is not None and principal.can(Permission.write_grids)
    )
    allow = ", ".join(full if writes else READ_ALLOW)
    return draft_id, Response(status_code=204, headers={"Allow": allow, "Vary": "Authorization"})


_OPTIONS: dict[int | str, dict[str, Any]] = {
    204: {
        "description": "The methods this caller may use here (Allow)",
        "headers": {"Allow": {"schema": {"type": "string"}}},
    }
}


@router.options(
    "/collections/{collectionId}/items",
    status_code=204,
    summary="Methods allowed on a collection's items (POST on an open draft, for planners)",
    responses=_OPTIONS,
)
def items_options(
    connection: ConnectionDep, principal: ReaderDep, collection_id: CollectionId
) -> Response:
    return _allow(connection, principal, collection_id, ITEMS_ALLOW)[1]


@router.options(
    "/collections/{collectionId}/items/{featureId}",
    status_code=204,
    summary="Methods allowed on one feature (PUT, PATCH, DELETE on an open draft's grid)",
    responses=_OPTIONS,
)
def item_options(
    connection: ConnectionDep,
    principal: ReaderDep,
    collection_id: CollectionId,
    feature_id: FeatureId,
) -> Response:
    draft_id, response = _allow(connection, principal, collection_id, ITEM_ALLOW)
    if draft_id is not None:
        transactions.grid_in_draft(connection, draft_id, feature_id)
    return response
