"""OGC API – Features (read) under /ogc: Part 1 core, GeoJSON and HTML, Part 2 CRS, Part 3 CQL2.

Thin: parse, call api.ogc, shape the answer. JSON unless `f=html` or the Accept header prefers
HTML. Every answer carries an ETag (the collection's revision and the request for features, the
body for the rest) and answers If-None-Match with 304.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from api.deps import CallerDep, ConnectionDep, NoNulCharacters
from api.errors import InvalidInput, NotFound, error_responses
from api.ogc import conformance, documents, html
from api.ogc.collections import Collection, listing, resolve, revision
from api.ogc.cql import compile_filter, equals_filter
from api.ogc.crs import parse_crs
from api.ogc.features import ItemsQuery, extent, item, item_count, items
from api.ogc.params import (
    parse_bbox,
    parse_datetime,
    parse_limit,
    parse_offset,
    queryable_params,
)
from api.replica import ReplicaConnectionDep
from web.render import BUILD

router = APIRouter(
    prefix="/ogc",
    tags=["OGC API Features"],
    responses=error_responses(400, 401, 404, 503),
    dependencies=[NoNulCharacters],
)
_JSON_FORMATS = ("json", "geojson", "application/json", "application/geo+json")
_GEOJSON_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/geo+json": {}, "text/html": {}}},
    304: {"description": "Not modified (If-None-Match)"},
}
_JSON_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/json": {}, "text/html": {}}},
    304: {"description": "Not modified (If-None-Match)"},
}

CollectionId = Annotated[str, Path(alias="collectionId", max_length=200)]
FeatureId = Annotated[str, Path(alias="featureId", max_length=200)]
Text = Annotated[str | None, Query(max_length=8000)]


def wants_html(request: Request) -> bool:
    chosen = request.query_params.get("f")
    if chosen:
        if chosen.lower() == "html":
            return True
        if chosen.lower() in _JSON_FORMATS:
            return False
        raise InvalidInput("f 只能是 json 或 html", code="invalid_format", where="query.f")
    return _prefers_html(request.headers.get("accept", ""))


def _prefers_html(accept: str) -> bool:
    """HTML only when the Accept header ranks text/html above every JSON type (q-values, then
    order); no header, */* or a tie answers JSON, the machine clients' format."""
    best = {"html": (-1.0, 0), "json": (-1.0, 0)}
    for position, part in enumerate(accept.lower().split(",")[:50]):
        media, *parameters = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        kind = "html" if media == "text/html" else "json" if media.endswith("json") else None
        if kind and quality > 0 and (quality, -position) > (best[kind][0], -best[kind][1]):
            best[kind] = (quality, position)
    return best["html"][0] > best["json"][0] or (
        best["html"][0] == best["json"][0] >= 0 and best["html"][1] < best["json"][1]
    )


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _etag(*parts: Any, prefix: str = "") -> str:
    digest = hashlib.sha256(BUILD.encode())
    for part in parts:
        digest.update(repr(part).encode() + b"\0")
    return f'"{prefix}{digest.hexdigest()[:32]}"'


def _draft_prefix(collection: Collection, current: str) -> str:
    """A draft's ETags start with its revision (d{id}.{generation}.{version}), so a client that
    sends one back as If-Match writes on the version it read (api/ogc/transactions.py)."""
    return f"{current}-" if collection.kind == "draft-grids" else ""


def _features_etag(
    request: Request, collection: Collection, current: str, as_html: bool, *what: str
) -> tuple[str, Response | None]:
    """The ETag of a features answer (the collection's revision, the representation and the
    query) and the 304 when the client holds it already."""
    etag = _etag(
        *what,
        collection.id,
        current,
        as_html,
        sorted(request.query_params.multi_items()),
        prefix=_draft_prefix(collection, current),
    )
    return etag, _not_modified(request, etag)


def _not_modified(request: Request, etag: str) -> Response | None:
    sent = request.headers.get("if-none-match", "")
    tags = {tag.strip().removeprefix("W/") for tag in sent.split(",")}
    if etag in tags or "*" in tags:
        return Response(status_code=304, headers={"ETag": etag, "Cache-Control": "no-cache"})
    return None


def _json(body: bytes, etag: str, media_type: str = documents.JSON, **headers: str) -> Response:
    return Response(
        body,
        media_type=media_type,
        headers={"ETag": etag, "Cache-Control": "no-cache", **headers},
    )


def _document(request: Request, doc: dict[str, Any], media_type: str = documents.JSON) -> Response:
    body = orjson.dumps(doc)
    etag = _etag(body)
    return _not_modified(request, etag) or _json(body, etag, media_type)


@router.get("", summary="Landing page", responses=_JSON_RESPONSE)
def landing(request: Request, f: Text = None) -> Response:
    as_html = wants_html(request)
    doc = documents.landing(_base(request), as_html)
    if as_html:
        etag = _etag("landing-html")
        return _not_modified(request, etag) or html.landing(request, doc, etag)
    return _document(request, doc)


@router.get("/api", summary="OpenAPI document of /ogc (paths relative to /ogc)")
def api_document(request: Request, connection: ConnectionDep, caller: CallerDep) -> Response:
    doc = documents.api_document(_base(request), request.app.openapi(), listing(connection, caller))
    # Our document is OpenAPI 3.1: its own media type only for a client that asks for 3.1 (GDAL
    # asks for 3.0 or JSON, and refuses a 3.1 media type).
    accept = request.headers.get("accept", "").replace(" ", "")
    wanted = documents.OPENAPI in accept
    return _document(request, doc, documents.OPENAPI if wanted else documents.JSON)


@router.get("/conformance", summary="Conformance classes", responses=_JSON_RESPONSE)
def conformance_classes(request: Request, f: Text = None) -> Response:
    classes = conformance.declared()
    if wants_html(request):
        etag = _etag("conformance-html", classes)
        return _not_modified(request, etag) or html.conformance(request, classes, etag)
    return _document(request, {"conformsTo": classes})


@router.get("/collections", summary="Feature collections", responses=_JSON_RESPONSE)
def collections(
    request: Request, connection: ConnectionDep, caller: CallerDep, f: Text = None
) -> Response:
    as_html = wants_html(request)
    base = _base(request)
    described = []
    for found in listing(connection, caller):
        current = revision(connection, found)
        described.append(
            documents.collection_doc(
                base,
                found,
                extent(connection, found, current),
                item_count(connection, found, current),
                as_html,
                False,
            )
        )
    doc = documents.collections_doc(base, described, as_html)
    if as_html:
        etag = _etag("collections-html", doc)
        return _not_modified(request, etag) or html.collections(request, doc, etag)
    return _document(request, doc)


@router.get("/collections/{collectionId}", summary="One collection", responses=_JSON_RESPONSE)
def collection(
    collection_id: CollectionId,
    request: Request,
    connection: ConnectionDep,
    caller: CallerDep,
    f: Text = None,
) -> Response:
    as_html = wants_html(request)
    found = resolve(connection, collection_id, caller)
    current = revision(connection, found)
    doc = documents.collection_doc(
        _base(request),
        found,
        extent(connection, found, current),
        item_count(connection, found, current),
        as_html,
        True,
    )
    if as_html:
        etag = _etag("collection-html", doc)
        return _not_modified(request, etag) or html.collection(request, doc, found, etag)
    return _document(request, doc)


@router.get(
    "/collections/{collectionId}/queryables",
    summary="Queryables (JSON Schema) for filter and query parameters",
    responses={200: {"content": {"application/schema+json": {}, "text/html": {}}}},
)
def queryables(
    collection_id: CollectionId,
    request: Request,
    connection: ConnectionDep,
    caller: CallerDep,
    f: Text = None,
) -> Response:
    as_html = wants_html(request)
    found = resolve(connection, collection_id, caller)
    doc = documents.queryables(_base(request), found)
    if as_html:
        etag = _etag("queryables-html", doc)
        return _not_modified(request, etag) or html.queryables(request, found, doc, etag)
    # JSON Schema's own media type unless the client asks for JSON only (GDAL refuses the
    # queryables, and so filters nothing on the server, when the answer is not JSON it named).
    accept = request.headers.get("accept", "")
    json_only = "json" in accept and documents.SCHEMA not in accept and "*/*" not in accept
    return _document(request, doc, documents.JSON if json_only else documents.SCHEMA)


@router.get(
    "/collections/{collectionId}/items",
    summary="Features (GeoJSON or HTML): bbox, datetime, crs, CQL2 filter, paging",
    responses=_GEOJSON_RESPONSE,
)
def features(
    collection_id: CollectionId,
    request: Request,
    connection: ReplicaConnectionDep,
    caller: CallerDep,
    limit: Annotated[str | None, Query(description="1–10000, default 10")] = None,
    offset: Annotated[str | None, Query(description="Features to skip (next links set it)")] = None,
    bbox: Annotated[
        str | None, Query(description="minx,miny,maxx,maxy in bbox-crs axis order")
    ] = None,
    bbox_crs: Annotated[str | None, Query(alias="bbox-crs", max_length=300)] = None,
    crs: Annotated[
        str | None,
        Query(max_length=300, description="Answer CRS (default CRS84); gcj02/bd09 extensions"),
    ] = None,
    datetime_: Annotated[
        str | None,
        Query(
            alias="datetime",
            max_length=100,
            description="Grids: the generation active at the instant or at the interval's end; "
            "events: reported_at",
        ),
    ] = None,
    filter_: Annotated[str | None, Query(alias="filter", description="CQL2")] = None,
    filter_lang: Annotated[
        str | None,
        Query(
            alias="filter-lang",
            description="cql2-text (default) or cql2-json; cql-text is read as cql2-text",
            json_schema_extra={"enum": ["cql2-text", "cql2-json", "cql-text"]},
        ),
    ] = None,
    filter_crs: Annotated[str | None, Query(alias="filter-crs", max_length=300)] = None,
    f: Text = None,
) -> Response:
    as_html = wants_html(request)
    found = resolve(connection, collection_id, caller)
    answer_crs = parse_crs(crs, "query.crs")
    conditions: list[tuple[str, tuple[tuple[str, Any], ...]]] = []
    if filter_:
        sql, params = compile_filter(
            found, filter_, filter_lang, parse_crs(filter_crs, "query.filter-crs")
        )
        conditions.append((sql, tuple(sorted(params.items()))))
    known = {p.name for p in found.properties}
    for index, (name, value) in enumerate(
        queryable_params(request.query_params.multi_items(), known)
    ):
        sql, params = equals_filter(found, name, value, index)
        conditions.append((sql, tuple(params.items())))
    query = ItemsQuery(
        limit=parse_limit(limit),
        offset=parse_offset(offset),
        bbox=parse_bbox(bbox, parse_crs(bbox_crs, "query.bbox-crs")),
        period=parse_datetime(datetime_),
        crs=answer_crs,
        conditions=tuple(conditions),
    )
    current = revision(connection, found)
    params_list = list(request.query_params.multi_items())
    etag, unchanged = _features_etag(request, found, current, as_html, "items")
    if unchanged is not None:
        return unchanged
    page = items(connection, found, query, current)
    summary = {
        "type": "FeatureCollection",
        "numberMatched": page.number_matched,
        "numberReturned": len(page.features),
        "timeStamp": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "links": documents.items_links(
            _base(request),
            found,
            params_list,
            query.offset,
            query.limit,
            page.number_matched,
            len(page.features),
            as_html,
        ),
    }
    if as_html:
        parsed = [orjson.loads(text) for text in page.features]
        return html.items(request, found, parsed, summary, etag)
    head = orjson.dumps(summary)
    body = b"".join([head[:-1], b',"features":[', ",".join(page.features).encode(), b"]}"])
    return _json(body, etag, documents.GEOJSON, **{"Content-Crs": answer_crs.header})


@router.get(
    "/collections/{collectionId}/items/{featureId}",
    summary="One feature (GeoJSON or HTML)",
    responses=_GEOJSON_RESPONSE,
)
def feature(
    collection_id: CollectionId,
    feature_id: FeatureId,
    request: Request,
    connection: ReplicaConnectionDep,
    caller: CallerDep,
    crs: Annotated[str | None, Query(max_length=300)] = None,
    f: Text = None,
) -> Response:
    as_html = wants_html(request)
    found = resolve(connection, collection_id, caller)
    answer_crs = parse_crs(crs, "query.crs")
    current = revision(connection, found)
    etag, unchanged = _features_etag(request, found, current, as_html, "item", feature_id)
    if unchanged is not None:
        return unchanged
    text = item(connection, found, feature_id, answer_crs)
    if text is None:
        raise NotFound(
            f"集合 {found.id} 中没有要素 {feature_id[:64]}",
            code="feature_not_found",
            where="path.featureId",
        )
    if as_html:
        return html.feature(request, found, orjson.loads(text), etag)
    links = documents.item_links(
        _base(request), found, feature_id, list(request.query_params.multi_items()), as_html
    )
    body = text[:-1].encode() + b',"links":' + orjson.dumps(links) + b"}"
    return _json(body, etag, documents.GEOJSON, **{"Content-Crs": answer_crs.header})
