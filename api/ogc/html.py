"""HTML views of the OGC documents (Jinja2, autoescaped; Chinese labels; no script, no CDN)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse

from api.ogc.collections import Collection
from web.render import page

TEMPLATE = "ogc_page.html"
HOME = {"href": "/ogc?f=html", "text": "OGC API"}
COLLECTIONS = {"href": "/ogc/collections?f=html", "text": "要素集合"}


def _html_links(links: list[dict[str, str]]) -> list[dict[str, str]]:
    return [
        {"href": entry["href"], "text": entry.get("title", entry["href"]), "note": entry["rel"]}
        for entry in links
        if entry["rel"] not in ("self",)
    ]


def landing(request: Request, doc: dict[str, Any], etag: str) -> HTMLResponse:
    return page(
        request,
        TEMPLATE,
        etag=etag,
        title=doc["title"],
        description=doc["description"],
        crumbs=[HOME],
        notes=[
            "在 QGIS 中：图层 → 添加图层 → 添加 WFS / OGC API – Features 图层，地址填本页地址。"
        ],
        links=_html_links(doc["links"]),
        tables=[],
        pager=None,
    )


def conformance(request: Request, classes: list[str], etag: str) -> HTMLResponse:
    return page(
        request,
        TEMPLATE,
        etag=etag,
        title="符合的标准类",
        description="本服务声明符合的 OGC 标准类（均由自动测试验证）",
        crumbs=[HOME],
        notes=[],
        links=[],
        tables=[{"caption": "", "header": ["标准类"], "rows": [[c] for c in classes]}],
        pager=None,
    )


def collections(request: Request, doc: dict[str, Any], etag: str) -> HTMLResponse:
    rows = [
        [
            {"href": f"/ogc/collections/{c['id']}?f=html", "text": c["id"]},
            c["title"],
            c["description"],
            {"href": f"/ogc/collections/{c['id']}/items?f=html", "text": "浏览要素"},
        ]
        for c in doc["collections"]
    ]
    return page(
        request,
        TEMPLATE,
        etag=etag,
        title="要素集合",
        description="",
        crumbs=[HOME, COLLECTIONS],
        notes=[],
        links=[],
        tables=[{"caption": "", "header": ["编号", "名称", "说明", "要素"], "rows": rows}],
        pager=None,
    )


def collection(request: Request, doc: dict[str, Any], item: Collection, etag: str) -> HTMLResponse:
    spatial = doc["extent"].get("spatial", {}).get("bbox", [[]])[0]
    temporal = doc["extent"].get("temporal", {}).get("interval", [[]])[0]
    facts = [
        ["编号", doc["id"]],
        ["几何类型", item.geometry_type],
        ["空间范围（CRS84）", ", ".join(str(v) for v in spatial) or None],
        ["时间范围", " / ".join(str(v or "..") for v in temporal) or None],
    ]
    fields = [[p.name, p.type, p.description] for p in item.properties]
    return page(
        request,
        TEMPLATE,
        etag=etag,
        title=doc["title"],
        description=doc["description"],
        crumbs=[
            HOME,
            COLLECTIONS,
            {"href": f"/ogc/collections/{doc['id']}?f=html", "text": doc["id"]},
        ],
        notes=[],
        links=_html_links(doc["links"]),
        tables=[
            {"caption": "概况", "header": ["项目", "值"], "rows": facts},
            {"caption": "属性", "header": ["属性", "类型", "说明"], "rows": fields},
        ],
        pager=None,
    )


def items(
    request: Request,
    item: Collection,
    features: list[dict[str, Any]],
    summary: dict[str, Any],
    etag: str,
) -> HTMLResponse:
    names = [p.name for p in item.properties]
    labels = [p.description for p in item.properties]
    rows = [
        [
            {
                "href": f"/ogc/collections/{item.id}/items/{quote(str(feature['id']), safe='')}?f=html",
                "text": str(feature["id"]),
            },
            *[_cell(feature["properties"].get(name)) for name in names],
        ]
        for feature in features
    ]
    links = {entry["rel"]: entry["href"] for entry in summary["links"]}
    return page(
        request,
        TEMPLATE,
        etag=etag,
        title=f"{item.title}：要素",
        description=f"共 {summary['numberMatched']} 个，本页 {summary['numberReturned']} 个",
        crumbs=[HOME, COLLECTIONS, {"href": f"/ogc/collections/{item.id}?f=html", "text": item.id}],
        notes=[],
        links=[],
        tables=[{"caption": "", "header": ["编号", *labels], "rows": rows}],
        pager={"prev": links.get("prev"), "next": links.get("next")},
    )


def feature(request: Request, item: Collection, found: dict[str, Any], etag: str) -> HTMLResponse:
    rows = [
        [p.description, p.name, _cell(found["properties"].get(p.name))] for p in item.properties
    ]
    geometry = found.get("geometry") or {}
    rows.append(["几何类型", "geometry", geometry.get("type")])
    return page(
        request,
        TEMPLATE,
        etag=etag,
        title=f"{item.title}：{found['id']}",
        description="",
        crumbs=[
            HOME,
            COLLECTIONS,
            {"href": f"/ogc/collections/{item.id}?f=html", "text": item.id},
            {"href": f"/ogc/collections/{item.id}/items?f=html", "text": "要素"},
        ],
        notes=[],
        links=[],
        tables=[{"caption": "", "header": ["属性", "字段", "值"], "rows": rows}],
        pager=None,
    )


def queryables(request: Request, item: Collection, doc: dict[str, Any], etag: str) -> HTMLResponse:
    rows = [
        [name, schema.get("title"), schema.get("format") or schema.get("type")]
        for name, schema in doc["properties"].items()
    ]
    return page(
        request,
        TEMPLATE,
        etag=etag,
        title=f"{item.title}：可查询属性",
        description="可在 filter（CQL2 文本或 JSON）中使用，或直接作查询参数（如 ?status=closed）",
        crumbs=[HOME, COLLECTIONS, {"href": f"/ogc/collections/{item.id}?f=html", "text": item.id}],
        notes=[],
        links=[],
        tables=[{"caption": "", "header": ["属性", "说明", "类型"], "rows": rows}],
        pager=None,
    )


def _cell(value: Any) -> Any:
    return None if value is None else str(value)
