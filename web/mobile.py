"""The field worker's phone pages under /m/ (我的任务, 事件, 上报, 巡查, 我的网格) and their service worker.

The pages are shells: what they show is fetched from the API with the login cookie (so the API's
own rules decide what each token reads and does), and a service worker (/m/sw.js, scope /m/)
keeps the pages, their assets and the API answers they read, so a worker in a basement still
sees their tasks. Actions go through an IndexedDB queue on the phone (web/assets/m_core.js) with
idempotency keys and are sent when the network returns.

The scripts and the stylesheet are served from /m/static/ under names carrying a hash of their
bytes, gzip-compressed and cached for a year: a deployment that changes a file changes its name,
so nothing stale is ever served and nothing current is ever fetched twice.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from api.auth import Permission, Principal
from api.db import events as event_rows
from api.db.generations import NoActiveGeneration
from api.deps import ConnectionDep, ReaderDep
from api.errors import error_responses
from api.workflow.machine import ACTIONS
from spatial.chinacrs import out_of_china, wgs84_to_bd09, wgs84_to_gcj02
from web.maps import STATUS_COLOURS, STATUS_LABELS, MapFactory
from web.render import ASSETS, page

router = APIRouter(
    tags=["phone pages"], responses=error_responses(401, 403, 404, 422), include_in_schema=False
)
HTML: dict[str, Any] = {"content": {"text/html": {}}}
LEAFLET_JS = "/static/vendor/leaflet/dist/leaflet.js"
LEAFLET_CSS = "/static/vendor/leaflet/dist/leaflet.css"
# The phone pages' own files; sw.js is a template filled per deployment (its precache list).
SCRIPTS: tuple[str, ...] = ("wangge.js", "m_core.js", "m_map.js", "m_tasks.js", "m_event.js")
SCRIPTS += ("m_report.js", "m_patrol.js", "m_grid.js")
STYLES = ("m.css",)
MEDIA_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
IMMUTABLE = "public, max-age=31536000, immutable"
# Pages (and the login offer) revalidate; the offer must never be kept by the service worker.
NO_STORE = "no-store"
# The actions a phone offers (the rest belong to the command centre).
PHONE_ACTIONS = ("start", "arrive", "handle", "request_postpone", "return", "verify", "rework")


@dataclass(frozen=True)
class Asset:
    name: str
    url: str
    body: bytes
    gzipped: bytes
    media_type: str
    etag: str


def _load_assets() -> dict[str, Asset]:
    assets = {}
    for name in SCRIPTS + STYLES:
        body = (ASSETS / name).read_bytes()
        digest = hashlib.sha256(body).hexdigest()
        stem, dot, extension = name.rpartition(".")
        url = f"/m/static/{stem}.{digest[:12]}{dot}{extension}"
        assets[name] = Asset(
            name=name,
            url=url,
            body=body,
            gzipped=gzip.compress(body, compresslevel=9, mtime=0),
            media_type=MEDIA_TYPES[dot + extension],
            etag=f'"{digest[:32]}"',
        )
    return assets


ASSET_FILES = _load_assets()
# Served by hashed name only: the name in a request is looked up here, never opened as a path.
BY_URL = {asset.url.rsplit("/", 1)[1]: asset for asset in ASSET_FILES.values()}
ASSET_URLS = {name: asset.url for name, asset in ASSET_FILES.items()}
PAGES = ("/m/", "/m/report", "/m/patrol", "/m/grid")
# What the service worker fetches when it installs: the pages, their assets, Leaflet, and the
# API answers every page needs (the catalogue and who I am).
PRECACHE = [
    *PAGES,
    *ASSET_URLS.values(),
    LEAFLET_JS,
    LEAFLET_CSS,
    "/api/v1/categories",
    "/api/v1/me",
]
SW_VERSION = hashlib.sha256(
    json.dumps(PRECACHE).encode() + (ASSETS / "sw.js").read_bytes()
).hexdigest()[:16]


@router.get("/m/static/{name}", summary="A phone page's script or stylesheet, by hashed name")
def static_asset(name: str, request: Request) -> Response:
    asset = BY_URL.get(name)
    if asset is None:
        return Response("没有这个文件", status_code=404, media_type="text/plain; charset=utf-8")
    headers = {"Cache-Control": IMMUTABLE, "ETag": asset.etag, "Vary": "Accept-Encoding"}
    if request.headers.get("if-none-match", "") == asset.etag:
        return Response(status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", "").lower():
        headers["Content-Encoding"] = "gzip"
        return Response(asset.gzipped, media_type=asset.media_type, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


@router.get("/m/sw.js", summary="The phone pages' service worker (scope /m/)")
def service_worker() -> Response:
    config = {"version": SW_VERSION, "precache": PRECACHE, "pages": list(PAGES)}
    script = (ASSETS / "sw.js").read_text(encoding="utf-8")
    # JSON is valid JavaScript; "<" cannot occur in the URLs above.
    body = script.replace("/*CONFIG*/{}", json.dumps(config, ensure_ascii=False), 1)
    return Response(
        body,
        media_type="text/javascript; charset=utf-8",
        # The browser checks for a new worker on each navigation; it must always see the newest.
        headers={"Cache-Control": "no-cache", "Service-Worker-Allowed": "/m/"},
    )


def _allowed(principal: Principal | None) -> bool:
    return principal is not None and principal.can(Permission.work_events)


def _login_offer(request: Request, principal: Principal | None, path: str) -> HTMLResponse:
    response = page(
        request,
        "m_login_offer.html",
        title="请先登录 · wangge",
        assets=ASSET_URLS,
        signed_in=principal is not None,
        login_next=path,
    )
    response.headers["Cache-Control"] = NO_STORE
    return response


def _map_config(request: Request, anchor: tuple[float, float] | None) -> dict[str, Any]:
    """Tiles and the datum the map draws in. On a GCJ-02 basemap (AMap) overlays come from the
    API in GCJ-02, and the phone's WGS84 fixes are shifted by the offset at `anchor`, computed
    here (spatial/chinacrs.py), which varies by a few metres across a grid."""
    factory = MapFactory(request.app.state.settings.maps)
    shift = [0.0, 0.0]
    if factory.overlay_crs != "EPSG:4326" and anchor is not None:
        lon, lat = anchor
        gcj_lon, gcj_lat = wgs84_to_gcj02(lon, lat)
        shift = [float(gcj_lon) - lon, float(gcj_lat) - lat]
    return {
        "tiles": [
            {"url": t.url, "attribution": t.attribution, "overlay": t.overlay}
            for t in factory.tiles()
        ],
        "crs": factory.api_crs,
        "shift": shift,
    }


def _common(principal: Principal) -> dict[str, Any]:
    return {
        "role": principal.role.value,
        "gridCodes": list(principal.grid_codes),
        "canReport": principal.can(Permission.report_events),
        "statusLabels": STATUS_LABELS,
        "statusColours": STATUS_COLOURS,
        "actionLabels": {name: action.label_zh for name, action in ACTIONS.items()},
        "phoneActions": list(PHONE_ACTIONS),
        "sw": "/m/sw.js",
        # Whose phone data this is: the queue and the saved answers belong to one token.
        "tokenId": principal.token_id,
    }


def _shell(
    request: Request,
    principal: Principal,
    template: str,
    title: str,
    tab: str,
    data: dict[str, Any],
    *,
    leaflet: bool = False,
    status_code: int = 200,
) -> HTMLResponse:
    return page(
        request,
        template,
        status_code=status_code,
        title=f"{title} · wangge",
        heading=title,
        tab=tab,
        assets=ASSET_URLS,
        leaflet={"js": LEAFLET_JS, "css": LEAFLET_CSS} if leaflet else None,
        page_data={**_common(principal), **data},
    )


def navigation_links(event_id: int, lon: float, lat: float) -> dict[str, Any] | None:
    """导航 links for AMap (GCJ-02) and Baidu Maps (BD-09), converted here: one implementation."""
    if bool(out_of_china(np.array([lon]), np.array([lat]))[0]):
        return None
    gcj_lon, gcj_lat = (round(float(v), 6) for v in wgs84_to_gcj02(lon, lat))
    bd_lon, bd_lat = (round(float(v), 6) for v in wgs84_to_bd09(lon, lat))
    name = f"事件{event_id}"
    return {
        "gcj02": [gcj_lon, gcj_lat],
        "bd09": [bd_lon, bd_lat],
        "amap": f"https://uri.amap.com/marker?position={gcj_lon},{gcj_lat}&name={name}"
        "&coordinate=gaode&callnative=1&src=wangge",
        "baidu_app": f"baidumap://map/marker?location={bd_lat},{bd_lon}&title={name}"
        f"&content={name}&coord_type=bd09ll&src=wangge",
        "baidu_web": f"https://api.map.baidu.com/marker?location={bd_lat},{bd_lon}&title={name}"
        f"&content={name}&output=html&coord_type=bd09ll&src=wangge",
    }


@router.get("/m/", response_class=HTMLResponse, responses={200: HTML}, summary="我的任务")
def tasks_page(request: Request, principal: ReaderDep) -> HTMLResponse:
    if not _allowed(principal):
        return _login_offer(request, principal, "/m/")
    assert principal is not None
    return _shell(request, principal, "m_tasks.html", "我的任务", "tasks", {})


@router.get("/m", include_in_schema=False)
def tasks_page_bare(request: Request, principal: ReaderDep) -> HTMLResponse:
    return tasks_page(request, principal)


@router.get(
    "/m/events/{event_id}", response_class=HTMLResponse, responses={200: HTML}, summary="事件"
)
def event_page(
    event_id: int, request: Request, connection: ConnectionDep, principal: ReaderDep
) -> HTMLResponse:
    path = f"/m/events/{event_id}"
    if not _allowed(principal):
        return _login_offer(request, principal, path)
    assert principal is not None
    row = event_rows.find_event(connection, event_id=event_id)
    placed = row is not None and row["lon"] is not None
    anchor = (row["lon"], row["lat"]) if row is not None and placed else None
    data = {
        "eventId": event_id,
        "found": row is not None,
        "nav": navigation_links(event_id, *anchor) if anchor else None,
        "map": _map_config(request, anchor),
    }
    return _shell(
        request,
        principal,
        "m_event.html",
        f"事件 #{event_id}",
        "tasks",
        data,
        leaflet=True,
        status_code=200 if row is not None else 404,
    )


@router.get("/m/report", response_class=HTMLResponse, responses={200: HTML}, summary="上报")
def report_page(request: Request, principal: ReaderDep) -> HTMLResponse:
    if not _allowed(principal) or not principal or not principal.can(Permission.report_events):
        return _login_offer(request, principal, "/m/report")
    return _shell(
        request,
        principal,
        "m_report.html",
        "上报",
        "report",
        {"map": _map_config(request, _grid_anchor(request, principal))},
        leaflet=True,
    )


@router.get("/m/patrol", response_class=HTMLResponse, responses={200: HTML}, summary="巡查")
def patrol_page(request: Request, principal: ReaderDep) -> HTMLResponse:
    if not _allowed(principal):
        return _login_offer(request, principal, "/m/patrol")
    assert principal is not None
    return _shell(
        request,
        principal,
        "m_patrol.html",
        "巡查",
        "patrol",
        {"map": _map_config(request, _grid_anchor(request, principal))},
        leaflet=True,
    )


@router.get("/m/grid", response_class=HTMLResponse, responses={200: HTML}, summary="我的网格")
def grid_page(request: Request, principal: ReaderDep, grid: str | None = None) -> HTMLResponse:
    if not _allowed(principal):
        return _login_offer(request, principal, "/m/grid")
    assert principal is not None
    chosen = grid or (principal.grid_codes[0] if principal.grid_codes else None)
    return _shell(
        request,
        principal,
        "m_grid.html",
        "我的网格",
        "grid",
        {"grid": chosen, "map": _map_config(request, _grid_anchor(request, principal, chosen))},
        leaflet=True,
    )


def _grid_anchor(
    request: Request, principal: Principal, code: str | None = None
) -> tuple[float, float] | None:
    """A point inside my (first) grid, for the GCJ-02 shift of my own position on AMap tiles."""
    code = code or (principal.grid_codes[0] if principal.grid_codes else None)
    if code is None:
        return None
    try:
        index = request.app.state.index_store.active()
    except NoActiveGeneration:  # no grids yet: no anchor, no shift
        return None
    position = index.by_code.get(code)
    if position is None:
        return None
    point = index.geometries[position].representative_point()
    return float(point.x), float(point.y)
