"""Map pages (server-rendered folium, Chinese UI) under /map/….

No page references another host: scripts and styles come from /static/vendor (npm, installed at
setup), so field staff without internet still get a working map. Pages are Jinja2 templates in
web/templates; their data reaches the scripts in web/assets as JSON.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import folium
import numpy as np
import shapely
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

from api.coverage import KIND_LABELS, find_check
from api.db import events as event_rows
from api.db import grids as grid_queries
from api.db import maps as map_queries
from api.db.generations import NoActiveGeneration, generation_at
from api.deps import ConnectionDep, IndexStoreDep, ReaderDep
from api.errors import NotFound, error_responses
from api.event_views import event_record
from api.lookup.index_store import IndexStore
from api.lookup.service import staff_on_duty
from api.privacy import Caller
from spatial.lookup import GridRecord
from web import command, draft_pages, login_pages, mobile, mobile_login, patrol_pages
from web.geocode_view import fix_form_data, geocode_summary
from web.maps import STATUS_COLOURS, STATUS_LABELS, MapFactory, camera_layer, render_map, simplified
from web.render import ASSETS, WEB_ROOT, not_modified, page, page_etag
from web.security import PageSecurityHeaders
from web.street import BREAKS, SHADES, StreetMaps

VENDOR = WEB_ROOT / "node_modules"
router = APIRouter(tags=["map pages"], responses=error_responses(401, 403, 404, 422, 503))
HTML: dict[str, Any] = {"content": {"text/html": {}}}
TABLE = {"fields": ["name", "code", "households"], "labels": ["名称", "编码", "户数"]}


def _factory(request: Request) -> MapFactory:
    return MapFactory(request.app.state.settings.maps)


@router.get(
    "/map/street",
    response_class=HTMLResponse,
    responses={200: HTML},
    summary="街道总览: every level switchable, grids shaded by open events",
)
def street_page(request: Request, connection: ConnectionDep, _: ReaderDep) -> Response:
    try:
        generation = generation_at(connection)
    except NoActiveGeneration:
        return page(request, "no_data.html")
    factory = _factory(request)
    counts = map_queries.open_event_counts(connection)
    etag = page_etag("street", generation, factory.settings.model_dump(), counts)
    if (unchanged := not_modified(request, etag)) is not None:
        return unchanged
    street = request.app.state.street_maps.get(connection, factory, generation)
    return page(
        request,
        "street.html",
        etag=etag,
        map=street.map,
        title=f"{street.title} · 网格总览",
        heading=street.title,
        generation=generation,
        total_open=sum(counts.values()),
        shades=SHADES,
        page_data={
            "map": street.map.name,
            "layers": street.layers,
            "open": street.open_counts(counts),
            "shade": {"breaks": BREAKS, "colours": [colour for colour, _ in SHADES]},
        },
    )


@router.get(
    "/map/grids/{code}",
    response_class=HTMLResponse,
    responses={200: HTML},
    summary="网格页: boundary, micro-grids, buildings (loaded by view), cameras, open events, staff",
)
def grid_page(
    code: str,
    request: Request,
    store: IndexStoreDep,
    connection: ConnectionDep,
    principal: ReaderDep,
) -> Response:
    generation = generation_at(connection)
    factory = _factory(request)
    rows, geometries = grid_queries.grid_shapes(connection, generation, code=code)
    if not rows:
        raise NotFound(f"没有编码为 {code} 的网格", code="grid_not_found", where="path.code")
    grid = rows[0]
    children, child_geoms = grid_queries.grid_shapes(connection, generation, parent_code=code)
    cameras = map_queries.cameras_within(connection, code, generation)
    open_events = map_queries.open_events_within(connection, code, generation)
    path = _active_path(store, code)
    path_codes = [record.code for record in path]
    trail = [{"code": r.code, "name": r.name} for r in path[:-1]]
    visible = Caller(principal).personal_codes(path_codes)
    staff = [
        {k: person[k] for k in ("role_label", "name", "phone")}
        for person in (staff_on_duty(store, visible)[:12] if visible else [])
    ]
    etag = page_etag(
        "grid",
        generation,
        factory.settings.model_dump(),
        grid,
        children,
        cameras,
        open_events,
        trail,
        bool(visible),
        staff,
        b"".join(shapely.to_wkb(np.concatenate([geometries, child_geoms]))),
    )
    if (unchanged := not_modified(request, etag)) is not None:
        return unchanged

    fmap = factory.new_map()
    layers = []
    if children:
        layer = folium.GeoJson(
            factory.feature_collection(
                simplified(child_geoms),
                [{k: c[k] for k in ("name", "code", "households")} for c in children],
            ),
            name="下级网格",
            style_function=lambda _: {"color": "#4a5568", "weight": 1, "fillOpacity": 0.05},
        ).add_to(fmap)
        layers.append({"layer": layer.get_name(), "tooltip": TABLE, "popup": "/map/grids/"})
    folium.GeoJson(
        factory.feature_collection(geometries, [{"code": code}]),
        name="网格边界",
        style_function=lambda _: {"color": "#c53030", "weight": 3, "fill": False},
        # On a canvas an unfilled outline still catches the pointer: let it reach the micro-grids.
        interactive=False,
    ).add_to(fmap)
    if cameras:
        layer = camera_layer(factory, cameras).add_to(fmap)
        layers.append({"layer": layer.get_name(), "tooltip": {"fields": ["label"]}})
    folium.LayerControl(collapsed=True).add_to(fmap)
    fmap.fit_bounds(factory.bounds(geometries))
    rendered = render_map(fmap)
    return page(
        request,
        "grid.html",
        etag=etag,
        map=rendered,
        title=f"{grid['name']} · 网格页",
        heading=grid["name"],
        grid=grid,
        trail=trail,
        open_events=open_events,
        sees_staff=bool(visible),
        staff=staff,
        page_data={
            "map": rendered.name,
            "layers": layers,
            # The API asked for the view's buildings and open events, in the basemap's datum.
            "buildingsUrl": "/api/v1/buildings?"
            + urlencode({"limit": 5000, "out_crs": factory.api_crs}),
            "eventsUrl": "/api/v1/events?"
            + urlencode({"status": "open", "limit": 5000, "out_crs": factory.api_crs}),
            "statusColours": STATUS_COLOURS,
            "statusLabels": STATUS_LABELS,
        },
    )


def _active_path(store: IndexStore, code: str) -> list[GridRecord]:
    """Root→leaf records of a grid in the active generation (its codes are what
    `store.active_path` gives), read from one snapshot of the index."""
    try:
        index = store.active()
    except NoActiveGeneration:
        return []
    return index.path(index.by_code[code]) if code in index.by_code else []


@router.get(
    "/map/events/{event_id}",
    response_class=HTMLResponse,
    responses={200: HTML},
    summary="事件页: the event, its grid, and the runner-up grid if it sat near an edge",
)
def event_page(
    event_id: int,
    request: Request,
    store: IndexStoreDep,
    connection: ConnectionDep,
    principal: ReaderDep,
) -> Response:
    event = event_rows.find_event(connection, event_id=event_id)
    if event is None:
        raise NotFound(
            f"没有编号为 {event_id} 的事件", code="event_not_found", where="path.event_id"
        )
    factory = _factory(request)
    generation = event["generation_id"] or generation_at(connection)
    rows, geometries = (
        grid_queries.grid_shapes(connection, generation, code=event["grid_code"])
        if event["grid_code"]
        else ([], np.array([], dtype=object))
    )
    runner = None
    if event["lon"] is not None:
        index = store.generation(generation)
        answer = index.lookup(np.array([event["lon"]]), np.array([event["lat"]]))
        position = int(answer.runner_up[0])
        if position >= 0:
            runner = {
                "geometry": index.geometries[position],
                "name": index.records[position].name,
                "distance_m": round(float(answer.runner_up_distance_m[0]), 1),
            }
    record = event_record(
        connection, store, request.app.state.settings.workflow, Caller(principal), event_id
    )
    description = (record["description"] or "") if "description" in record else None
    fix = fix_form_data(record, principal)  # 纠正地址, for those who may teach the matcher
    etag = page_etag(
        "event",
        event_id,
        generation,
        factory.settings.model_dump(),
        record,  # its version, warning and history: a transition or the clock changes the page
        fix,
        rows,
        {k: v for k, v in (runner or {}).items() if k != "geometry"},
    )
    if (unchanged := not_modified(request, etag)) is not None:
        return unchanged

    fmap = factory.new_map()
    layers, shown = [], []
    if rows:
        layer = folium.GeoJson(
            factory.feature_collection(geometries, [{"code": rows[0]["code"]}]),
            name="所在网格",
            style_function=lambda _: {"color": "#c53030", "weight": 3, "fillOpacity": 0.1},
        ).add_to(fmap)
        layers.append({"layer": layer.get_name(), "tooltip": {"text": rows[0]["name"]}})
        shown.append(geometries[0])
    if runner is not None:
        layer = folium.GeoJson(
            factory.geometry(runner["geometry"]),
            name="次选网格",
            style_function=lambda _: {
                "color": "#dd6b20",
                "weight": 2,
                "dashArray": "6",
                "fillOpacity": 0.05,
            },
        ).add_to(fmap)
        layers.append({"layer": layer.get_name(), "tooltip": {"text": f"次选：{runner['name']}"}})
    if event["lon"] is not None:
        point = shapely.Point(event["lon"], event["lat"])
        lon, lat = factory.geometry(point)["coordinates"]
        marker = folium.Marker([lat, lon]).add_to(fmap)
        layers.append({"layer": marker.get_name(), "tooltip": {"text": f"事件 #{event_id}"}})
        shown.append(point.buffer(0.0005))
    if shown:
        fmap.fit_bounds(factory.bounds(np.array(shown, dtype=object)))
    folium.LayerControl(collapsed=True).add_to(fmap)
    rendered = render_map(fmap)
    return page(
        request,
        "event.html",
        etag=etag,
        map=rendered,
        title=f"事件 #{event_id}",
        heading=f"事件 #{event_id}",
        description=description,
        event=record,
        runner=runner,
        geocode=geocode_summary(record),
        page_data={"map": rendered.name, "layers": layers, "geocodeFix": fix},
    )


CHECK_COLOURS = {
    "overlaps": "#e53e3e",
    "gaps": "#d69e2e",
    "invalid_edges": "#805ad5",
    "outside_parent": "#dd6b20",
    "orphan_buildings": "#2b6cb0",
    "split_buildings": "#319795",
    "invalid_geometries": "#000000",
    "code_rule": "#b83280",
}
LISTED_FINDINGS = 300


@router.get(
    "/map/checks/{check_id}",
    response_class=HTMLResponse,
    responses={200: HTML},
    summary="覆盖检查报告: every finding drawn and listed, each zoomable",
)
def check_page(
    check_id: int, request: Request, connection: ConnectionDep, _: ReaderDep
) -> Response:
    report = find_check(connection, check_id)
    if report is None:
        raise NotFound(
            f"没有编号为 {check_id} 的检查", code="check_not_found", where="path.check_id"
        )
    factory = _factory(request)
    # A stored check never changes.
    etag = page_etag("check", check_id, report["created_at"], factory.settings.model_dump())
    if (unchanged := not_modified(request, etag)) is not None:
        return unchanged
    fmap = factory.new_map()
    rows, geometries = grid_queries.grid_shapes(connection, report["generation"], level="grid")
    if rows:
        folium.GeoJson(
            factory.feature_collection(simplified(geometries), [{"code": r["code"]} for r in rows]),
            name="网格",
            style_function=lambda _: {"color": "#718096", "weight": 1, "fillOpacity": 0},
            interactive=False,
        ).add_to(fmap)
        fmap.fit_bounds(factory.bounds(geometries))
    layers, findings = [], []
    for kind, colour in CHECK_COLOURS.items():
        placed = [f for f in report.get(kind, []) if f.get("geometry") is not None]
        shapes = [shapely.from_geojson(json.dumps(f["geometry"])) for f in placed]
        layer = folium.GeoJson(
            factory.feature_collection(
                np.array(
                    [
                        shapely.buffer(s, 0.00002) if s.geom_type.endswith("LineString") else s
                        for s in shapes
                    ],
                    dtype=object,
                ),
                [{"message": f["message"]} for f in placed],
            ),
            name=f"{KIND_LABELS[kind]}（{len(report.get(kind, []))}）",
            style_function=lambda _, c=colour: {"color": c, "weight": 3, "fillOpacity": 0.5},
        ).add_to(fmap)
        layers.append({"layer": layer.get_name(), "tooltip": {"fields": ["message"]}})
        for finding, shape in zip(placed, shapes, strict=True):
            bounds = factory.bounds(np.array([shapely.buffer(shape, 0.0003)]))
            findings.append({"message": finding["message"], "bounds": bounds})
    folium.LayerControl(collapsed=True).add_to(fmap)
    rendered = render_map(fmap)
    listed = findings[:LISTED_FINDINGS]
    return page(
        request,
        "check.html",
        etag=etag,
        map=rendered,
        title=f"覆盖检查 #{check_id}",
        heading=f"覆盖检查 #{check_id}",
        report=report,
        findings=listed,
        page_data={
            "map": rendered.name,
            "layers": layers,
            "findings": [f["bounds"] for f in listed],
        },
    )


class VendorFiles(StaticFiles):
    """npm packages' scripts, styles, images and fonts — not their HTML demo pages, which would
    run on wangge's origin."""

    SERVED = (".js", ".css", ".map", ".png", ".svg", ".gif", ".woff", ".woff2", ".ttf")

    def lookup_path(self, path: str) -> tuple[str, Any]:
        if not path.lower().endswith(self.SERVED):
            return "", None
        return super().lookup_path(path)


def mount(app: FastAPI) -> None:
    """Page routes, their assets, the street-map cache and the pages' security headers."""
    app.include_router(login_pages.router)
    app.include_router(router)
    app.include_router(draft_pages.router)
    app.include_router(command.router)
    app.include_router(mobile_login.router)
    app.include_router(mobile.router)
    app.include_router(patrol_pages.router)
    app.mount("/static/wangge", StaticFiles(directory=ASSETS), name="wangge-assets")
    if VENDOR.exists():
        app.mount("/static/vendor", VendorFiles(directory=VENDOR), name="vendor")
    app.state.street_maps = StreetMaps()
    tiles = MapFactory(app.state.settings.maps).tiles()
    app.add_middleware(PageSecurityHeaders, tile_urls=[tile.url for tile in tiles])
