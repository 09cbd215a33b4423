"""The JSON documents of OGC API Features: landing page, collections, queryables, links.

Links are absolute (built from the request's base URL) and always come in JSON/HTML pairs:
`self` in the format answered, `alternate` in the other.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from api.ogc import crs
from api.ogc.collections import Collection

GEOJSON = "application/geo+json"
JSON = "application/json"
HTML = "text/html"
SCHEMA = "application/schema+json"
OPENAPI = "application/vnd.oai.openapi+json;version=3.1"
OPENAPI_PATH = "/ogc/api"  # the /ogc part of the service's OpenAPI document, paths from /ogc
DOCS_PATH = "/api/v1/docs"
TILESETS = "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector"


def link(href: str, rel: str, media_type: str, title: str) -> dict[str, str]:
    return {"href": href, "rel": rel, "type": media_type, "title": title}


def with_query(url: str, params: list[tuple[str, str]]) -> str:
    return f"{url}?{urlencode(params)}" if params else url


def pair(url: str, params: list[tuple[str, str]], json_type: str, html: bool) -> list[dict]:
    """self + alternate links of a resource, for a JSON or an HTML answer."""
    rest = [(k, v) for k, v in params if k != "f"]
    as_json = link(with_query(url, [*rest, ("f", "json")]), "self", json_type, "JSON")
    as_html = link(with_query(url, [*rest, ("f", "html")]), "self", HTML, "HTML 页面")
    if html:
        as_json["rel"] = "alternate"
        return [as_html, as_json]
    as_html["rel"] = "alternate"
    return [as_json, as_html]


_SCHEMAS = {
    "string": {"type": "string"},
    "integer": {"type": "integer"},
    "number": {"type": "number"},
    "date-time": {"type": "string", "format": "date-time"},
}


def _items_of(collection: Collection, generic: dict[str, Any]) -> dict[str, Any]:
    """The items operation of one collection: the generic one, with each queryable as a query
    parameter (Part 3), so clients (GDAL) learn which properties the server filters on."""
    operation = dict(generic)
    operation["operationId"] = f"{generic.get('operationId', 'items')}_{collection.id}"
    operation["parameters"] = [
        parameter
        for parameter in generic.get("parameters", [])
        if parameter.get("name") != "collectionId"
    ] + [
        {
            "name": prop.name,
            "in": "query",
            "required": False,
            "description": f"{prop.description}（等于）",
            "schema": _SCHEMAS[prop.type],
        }
        for prop in collection.properties
    ]
    return {"get": operation}


def api_document(base: str, full: dict[str, Any], collections: list[Collection]) -> dict[str, Any]:
    """The service's OpenAPI document cut to /ogc, with /ogc as its server, and one items path
    per collection: clients such as GDAL look up `/collections/{id}/items` in it to learn the
    filter parameters and queryables."""
    paths = {
        path.removeprefix("/ogc") or "/": operations
        for path, operations in full.get("paths", {}).items()
        if path == "/ogc" or path.startswith("/ogc/")
    }
    generic = paths.get("/collections/{collectionId}/items", {}).get("get")
    if generic is not None:
        for collection in collections:
            paths[f"/collections/{collection.id}/items"] = _items_of(collection, generic)
    return {
        "openapi": full.get("openapi", "3.1.0"),
        "info": {
            "title": "wangge OGC API – Features",
            "version": full.get("info", {}).get("version", "0"),
            "description": "网格、建筑、监控点位与事件（公开字段）",
        },
        "servers": [{"url": f"{base}/ogc"}],
        "paths": paths,
        "components": full.get("components", {}),
    }


def landing(base: str, html: bool) -> dict[str, Any]:
    root = f"{base}/ogc"
    return {
        "title": "wangge 网格化管理 OGC API",
        "description": "网格、建筑、监控点位与事件（公开字段），OGC API – Features 第 1/2/3 部分",
        "links": [
            *pair(root, [], JSON, html),
            link(f"{base}{OPENAPI_PATH}", "service-desc", OPENAPI, "OpenAPI 文档"),
            link(f"{base}{DOCS_PATH}", "service-doc", HTML, "API 文档（页面）"),
            link(f"{root}/conformance", "conformance", JSON, "符合的标准类"),
            link(
                f"{root}/conformance",
                "http://www.opengis.net/def/rel/ogc/1.0/conformance",
                JSON,
                "符合的标准类",
            ),
            link(f"{root}/collections", "data", JSON, "要素集合"),
            link(
                f"{root}/collections",
                "http://www.opengis.net/def/rel/ogc/1.0/data",
                JSON,
                "要素集合",
            ),
            link(
                f"{root}/tileMatrixSets",
                "http://www.opengis.net/def/rel/ogc/1.0/tiling-schemes",
                JSON,
                "瓦片矩阵集",
            ),
        ],
    }


def queryables_url(base: str, collection: Collection) -> str:
    return f"{base}/ogc/collections/{collection.id}/queryables"


def collection_doc(
    base: str,
    collection: Collection,
    extent: dict[str, Any],
    count: int,
    html: bool,
    own: bool,
) -> dict[str, Any]:
    """A collection's description; `own` when it is the answer (its links are self/alternate)."""
    url = f"{base}/ogc/collections/{collection.id}"
    links = pair(url, [], JSON, html) if own else [link(url, "self", JSON, collection.title)]
    links += [
        link(f"{url}/items?f=json", "items", GEOJSON, f"{collection.title}（GeoJSON）"),
        link(f"{url}/items?f=html", "items", HTML, f"{collection.title}（页面）"),
        link(
            queryables_url(base, collection),
            "http://www.opengis.net/def/rel/ogc/1.0/queryables",
            SCHEMA,
            "可查询属性",
        ),
        # GDAL's OAPIF driver looks for the short relation name only.
        link(queryables_url(base, collection), "queryables", SCHEMA, "可查询属性"),
    ]
    # OGC API – Tiles (api/routes/tiles.py, always mounted with this router)
    links.append(link(f"{url}/tiles", TILESETS, JSON, f"{collection.title}（矢量瓦片）"))
    return {
        "id": collection.id,
        "title": collection.title,
        "description": collection.description,
        "itemType": "feature",
        "extent": extent,
        "crs": crs.supported_uris(),
        "storageCrs": crs.CRS84,
        "itemCount": count,
        "links": links,
    }


def collections_doc(base: str, described: list[dict[str, Any]], html: bool) -> dict[str, Any]:
    return {
        "links": pair(f"{base}/ogc/collections", [], JSON, html),
        "crs": crs.supported_uris(),
        "collections": described,
    }


_FORMATS = {"date-time": ("string", "date-time")}


def queryables(base: str, collection: Collection) -> dict[str, Any]:
    """The queryables as a JSON Schema (Part 3): each property, plus the geometry."""
    properties: dict[str, Any] = {
        "geometry": {
            "title": "几何",
            "format": f"geometry-{collection.geometry_type.lower()}",
            "x-ogc-role": "primary-geometry",
        }
    }
    for prop in collection.properties:
        kind, fmt = _FORMATS.get(prop.type, (prop.type, None))
        schema: dict[str, Any] = {"title": prop.description, "type": kind}
        if fmt:
            schema["format"] = fmt
        properties[prop.name] = schema
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": queryables_url(base, collection),
        "type": "object",
        "title": collection.title,
        "properties": properties,
        "additionalProperties": False,
    }


def items_links(
    base: str,
    collection: Collection,
    params: list[tuple[str, str]],
    offset: int,
    limit: int,
    matched: int,
    returned: int,
    html: bool,
) -> list[dict[str, str]]:
    """self/alternate, collection, and next/prev keeping every other parameter."""
    url = f"{base}/ogc/collections/{collection.id}/items"
    media = HTML if html else GEOJSON
    links = pair(url, params, GEOJSON, html)
    links.append(
        link(f"{base}/ogc/collections/{collection.id}", "collection", JSON, collection.title)
    )
    rest = [(k, v) for k, v in params if k not in ("offset", "limit")]
    rest.append(("limit", str(limit)))
    if offset + returned < matched:
        links.append(
            link(with_query(url, [*rest, ("offset", str(offset + limit))]), "next", media, "下一页")
        )
    if offset > 0:
        links.append(
            link(
                with_query(url, [*rest, ("offset", str(max(offset - limit, 0)))]),
                "prev",
                media,
                "上一页",
            )
        )
    return links


def item_links(
    base: str, collection: Collection, feature_id: str, params: list[tuple[str, str]], html: bool
) -> list[dict[str, str]]:
    url = f"{base}/ogc/collections/{collection.id}/items/{quote(feature_id, safe='')}"
    links = pair(url, params, GEOJSON, html)
    links.append(
        link(f"{base}/ogc/collections/{collection.id}", "collection", JSON, collection.title)
    )
    return links
