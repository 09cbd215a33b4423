"""Map pages (server-rendered folium, Chinese UI) under /map/…, plus the home page.

No page references another host: scripts and styles come from /static/vendor (npm, installed at
setup), so field staff without internet still get a working map.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Annotated, Any

import folium
import numpy as np
import shapely
from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from folium.utilities import JsCode

from api.auth import Role, resolve_token
from api.coverage import KIND_LABELS, find_check
from api.db import events as event_rows
from api.db import maps as map_queries
from api.db.generations import NoActiveGeneration, generation_at
from api.deps import TOKEN_COOKIE, ConnectionDep, EngineDep, ReaderDep
from api.errors import NotFound
from api.lookup.service import staff_on_duty
from web import draft_pages
from web.maps import (
    CHOROPLETH,
    STATUS_COLOURS,
    STATUS_LABELS,
    MapFactory,
    camera_layer,
    choropleth_colour,
    feature_collection,
    finish,
    json_script,
    legend,
    panel,
    simplified,
)

WEB_ROOT = Path(__file__).resolve().parent
VENDOR = WEB_ROOT / "node_modules"
router = APIRouter(tags=["map pages"])
HTML: dict[str, Any] = {"content": {"text/html": {}}}


def _factory(request: Request) -> MapFactory:
    return MapFactory(request.app.state.settings.maps)


FAVICON = (
    "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 64 64'><rect width='64' height='64' rx='12' "
    "fill='#2b6cb0'/><path d='M12 22h40M12 42h40M22 12v40M42 12v40' stroke='#fff' stroke-width='5'/></svg>"
)


@router.get("/favicon.ico", include_in_schema=False)
def favicon() -> Response:
    return Response(FAVICON, media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"})


_LOGIN_FORM = (
    "<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'>"
    "<meta name='viewport' content='width=device-width, initial-scale=1'><title>登录 · wangge</title>"
    "<style>body{{font:16px sans-serif;margin:2em auto;max-width:360px;padding:0 1em}}input,button{{font-size:16px;"
    "width:100%;padding:10px;margin:6px 0;box-sizing:border-box}}</style></head><body><h1>网格员登录</h1>{message}"
    "<form method='post' action='/map/login'><label>API 令牌<input name='token' type='password' required "
    "autocomplete='current-password'></label><input type='hidden' name='next' value='{next}'>"
    "<button type='submit'>登录</button></form></body></html>"
)


@router.get(
    "/map/login",
    response_class=HTMLResponse,
    summary="登录: keep an API token in a cookie for map pages",
)
def login_form(next: str = "/map/street") -> HTMLResponse:
    return HTMLResponse(_LOGIN_FORM.format(message="", next=html.escape(_local(next))))


def _local(target: str) -> str:
    """Only redirect within this site."""
    return target if target.startswith("/") and not target.startswith("//") else "/map/street"


@router.post(
    "/map/login", response_class=HTMLResponse, summary="登录: check the token and set the cookie"
)
def login(
    request: Request,
    engine: EngineDep,
    token: Annotated[str, Form()],
    next: Annotated[str, Form()] = "/map/street",
) -> Response:
    with engine.connect() as connection:
        principal = resolve_token(connection, token.strip())
    if principal is None:
        return HTMLResponse(
            _LOGIN_FORM.format(
                message="<p style='color:#c53030'>令牌无效、已过期或已吊销</p>",
                next=html.escape(_local(next)),
            ),
            status_code=401,
        )
    response = RedirectResponse(_local(next), status_code=303)
    response.set_cookie(
        TOKEN_COOKIE,
        token.strip(),
        httponly=True,
        samesite="strict",
        max_age=12 * 3600,
        secure=request.app.state.settings.mode == "prod",
    )
    return response


@router.get("/", include_in_schema=False)
def home() -> RedirectResponse:
    return RedirectResponse("/map/street")


@router.get(
    "/map/street",
    response_class=HTMLResponse,
    responses={200: HTML},
    summary="街道总览: every level switchable, grids shaded by open events",
)
def street_page(request: Request, connection: ConnectionDep, _: ReaderDep) -> HTMLResponse:
    try:
        generation = generation_at(connection)
    except NoActiveGeneration:
        return HTMLResponse(
            "<!doctype html><html lang='zh-CN'><meta charset='utf-8'><title>wangge</title>"
            "<p>还没有网格数据：运行 <code>wangge demo load</code> 或导入网格。</p></html>"
        )
    factory = _factory(request)
    fmap = factory.new_map()
    counts = map_queries.open_event_counts(connection)
    rows, geometries = map_queries.grid_layer(connection, generation)
    children: dict[str, list[str]] = {}
    for row in rows:
        if row["parent_code"]:
            children.setdefault(row["parent_code"], []).append(row["code"])

    def open_in(code: str) -> int:
        return counts.get(code, 0) + sum(open_in(child) for child in children.get(code, []))

    levels = [("community", "社区", 3), ("grid", "网格", 2), ("micro_grid", "微网格", 0.6)]
    breaks = [0, 1, 2, 4, 10**9]
    for level, label, weight in levels:
        members = [i for i, r in enumerate(rows) if r["level"] == level]
        if not members:
            continue
        shapes = simplified(geometries[members])
        props = [
            {
                "name": rows[i]["name"],
                "code": rows[i]["code"],
                "open": open_in(rows[i]["code"]),
            }
            for i in members
        ]
        shaded = level == "grid"
        folium.GeoJson(
            feature_collection(factory, shapes, props),
            name=f"{label}（{len(members)}）",
            show=level != "micro_grid",
            style_function=(
                lambda f, w=weight, s=shaded: {
                    "color": "#2d3748",
                    "weight": w,
                    "fillColor": choropleth_colour(f["properties"]["open"], breaks)
                    if s
                    else "#ffffff",
                    "fillOpacity": 0.65 if s else 0.0,
                }
            ),
            highlight_function=lambda _: {"weight": 3, "color": "#e53e3e"},
            tooltip=folium.GeoJsonTooltip(
                ["name", "code", "open"], aliases=["名称", "编码", "未结事件"]
            ),
            # A click (a tap on a phone) opens the grid's own page.
            on_each_feature=JsCode(
                "function(feature, layer){layer.on('click', function(){"
                "window.location.href='/map/grids/' + encodeURIComponent(feature.properties.code);});}"
            ),
        ).add_to(fmap)
    folium.LayerControl(collapsed=False).add_to(fmap)
    street = [i for i, r in enumerate(rows) if r["level"] == "street"] or list(range(len(rows)))
    fmap.fit_bounds(factory.bounds(geometries[street]))
    title = rows[street[0]]["name"] if rows else "wangge"
    total_open = sum(counts.values())
    body = (
        f"第 {generation} 版网格 · 未结事件 {total_open} 件<br>"
        "<a href='/api/v1/docs'>API 文档</a> · <a href='/api/v1/export/grids?format=gpkg'>导出网格</a>"
    )
    shades = [
        (CHOROPLETH[0], "0"),
        (CHOROPLETH[1], "1"),
        (CHOROPLETH[2], "2"),
        (CHOROPLETH[3], "3–4"),
        (CHOROPLETH[4], "5 及以上"),
    ]
    return HTMLResponse(
        finish(fmap, f"{title} · 网格总览", panel(title, body) + legend("网格未结事件", shades))
    )


@router.get(
    "/map/grids/{code}",
    response_class=HTMLResponse,
    responses={200: HTML},
    summary="网格页: boundary, micro-grids, buildings (loaded by view), cameras, open events, staff",
)
def grid_page(
    code: str, request: Request, connection: ConnectionDep, principal: ReaderDep
) -> HTMLResponse:
    generation = generation_at(connection)
    factory = _factory(request)
    rows, geometries = map_queries.grid_layer(connection, generation, code=code)
    if not rows:
        raise NotFound(f"没有编码为 {code} 的网格", code="grid_not_found", where="path.code")
    grid = rows[0]
    fmap = factory.new_map()
    children, child_geoms = map_queries.grid_layer(connection, generation, parent=code)
    if children:
        folium.GeoJson(
            feature_collection(
                factory,
                simplified(child_geoms),
                [
                    {
                        "name": c["name"],
                        "code": c["code"],
                        "households": c["households"],
                        "link": f"<a href='/map/grids/{c['code']}'>打开</a>",
                    }
                    for c in children
                ],
            ),
            name="下级网格",
            style_function=lambda _: {"color": "#4a5568", "weight": 1, "fillOpacity": 0.05},
            tooltip=folium.GeoJsonTooltip(
                ["name", "code", "households"], aliases=["名称", "编码", "户数"]
            ),
            popup=folium.GeoJsonPopup(["name", "link"], labels=False),
        ).add_to(fmap)
    folium.GeoJson(
        feature_collection(factory, geometries, [{"name": grid["name"], "code": code}]),
        name="网格边界",
        style_function=lambda _: {"color": "#c53030", "weight": 3, "fill": False},
    ).add_to(fmap)
    camera_layer(factory, map_queries.cameras_within(connection, code, generation)).add_to(fmap)
    events = map_queries.open_events_within(connection, code, generation)
    folium.LayerControl(collapsed=True).add_to(fmap)
    fmap.fit_bounds(factory.bounds(geometries))
    store = request.app.state.index_store
    path = (
        store.active().path(store.active().by_code[code]) if code in store.active().by_code else []
    )
    staff_html = ""
    codes = [r.code for r in path]
    if (
        principal is not None
        and principal.role != Role.viewer
        and (principal.role != Role.field_staff or set(principal.grid_codes) & set(codes))
    ):
        staff = staff_on_duty(store, codes)[:12]
        staff_html = "<br>".join(
            f"{html.escape(s['role_label'])}：{html.escape(s['name'])} "
            f"<a href='tel:{html.escape(s['phone'] or '')}'>{html.escape(s['phone'] or '')}</a>"
            for s in staff
        )
    trail = " › ".join(
        f"<a href='/map/grids/{r.code}'>{html.escape(r.name)}</a>" for r in path[:-1]
    )
    body = (
        f"{trail}<br>编码 {code} · 户数 {grid['households'] or '-'} · 未结事件 {len(events)} 件"
        + (
            f"<hr>{staff_html}"
            if staff_html
            else f"<br><small><a href='/map/login?next=/map/grids/{code}'>登录</a>后查看人员联系方式</small>"
        )
    )
    out_crs = "gcj02" if factory.overlay_crs == "GCJ02" else "EPSG:4326"
    loaders = _buildings_loader(fmap.get_name(), out_crs) + _events_loader(fmap.get_name(), out_crs)
    return HTMLResponse(
        finish(fmap, f"{grid['name']} · 网格页", panel(grid["name"], body), loaders)
    )


def _buildings_loader(map_name: str, out_crs: str) -> str:
    """Buildings are loaded per view from the GeoJSON API (zoomed in only), never inlined."""
    return f"""
(function(){{var map={map_name};var layer=L.geoJSON(null,{{style:{{color:'#975a16',weight:1,fillOpacity:0.3}},
onEachFeature:function(f,l){{var p=f.properties;l.bindPopup((p.address||p.code)+'<br>户数：'+(p.households==null?'-':p.households));}}}}).addTo(map);
function load(){{if(map.getZoom()<16){{layer.clearLayers();return;}}var b=map.getBounds();
fetch('/api/v1/buildings?limit=5000&out_crs={out_crs}&bbox='+[b.getWest(),b.getSouth(),b.getEast(),b.getNorth()].join(','))
.then(function(r){{return r.json();}}).then(function(fc){{layer.clearLayers();layer.addData(fc);}});}}
map.on('moveend',load);load();}})();"""


def _events_loader(map_name: str, out_crs: str) -> str:
    """Open events for the view, from the GeoJSON API: coloured by status, overdue ringed red."""
    colours, labels = json_script(STATUS_COLOURS), json_script(STATUS_LABELS)
    return f"""
(function(){{var map={map_name};var colours={colours},labels={labels};
var layer=L.geoJSON(null,{{pointToLayer:function(f,ll){{var p=f.properties;return L.circleMarker(ll,{{radius:7,
color:p.overdue?'#c53030':'#ffffff',weight:p.overdue?3:1,fillColor:colours[p.status]||'#718096',fillOpacity:0.9}});}},
onEachFeature:function(f,l){{var p=f.properties;l.bindPopup('#'+p.id+' '+(p.description||'')+'<br>'+(labels[p.status]||p.status)
+(p.overdue?'，<b style="color:#c53030">已逾期</b>':'')+'<br><a href="/map/events/'+p.id+'">详情</a>');}}}}).addTo(map);
function load(){{var b=map.getBounds();fetch('/api/v1/events?status=open&limit=5000&out_crs={out_crs}&bbox='
+[b.getWest(),b.getSouth(),b.getEast(),b.getNorth()].join(',')).then(function(r){{return r.json();}})
.then(function(fc){{layer.clearLayers();layer.addData(fc);}});}}
map.on('moveend',load);load();}})();"""


@router.get(
    "/map/events/{event_id}",
    response_class=HTMLResponse,
    responses={200: HTML},
    summary="事件页: the event, its grid, and the runner-up grid if it sat near an edge",
)
def event_page(
    event_id: int, request: Request, connection: ConnectionDep, _: ReaderDep
) -> HTMLResponse:
    event = event_rows.find_event(connection, event_id=event_id)
    if event is None:
        raise NotFound(
            f"没有编号为 {event_id} 的事件", code="event_not_found", where="path.event_id"
        )
    factory = _factory(request)
    fmap = factory.new_map()
    generation = event["generation_id"] or generation_at(connection)
    shown = []
    if event["grid_code"]:
        rows, geometries = map_queries.grid_layer(connection, generation, code=event["grid_code"])
        if rows:
            folium.GeoJson(
                feature_collection(factory, geometries, [{"name": rows[0]["name"]}]),
                name="所在网格",
                tooltip=rows[0]["name"],
                style_function=lambda _: {"color": "#c53030", "weight": 3, "fillOpacity": 0.1},
            ).add_to(fmap)
            shown.append(geometries[0])
    runner_html = ""
    if event["lon"] is not None:
        index = request.app.state.index_store.generation(generation)
        answer = index.lookup(np.array([event["lon"]]), np.array([event["lat"]]))
        runner = int(answer.runner_up[0])
        if runner >= 0:
            record = index.records[runner]
            folium.GeoJson(
                factory.geometry(index.geometries[runner]),
                name="次选网格",
                tooltip=f"次选：{record.name}",
                style_function=lambda _: {
                    "color": "#dd6b20",
                    "weight": 2,
                    "dashArray": "6",
                    "fillOpacity": 0.05,
                },
            ).add_to(fmap)
            runner_html = f"<br>靠近边界：次选网格 {html.escape(record.name)}（{answer.runner_up_distance_m[0]:.1f} 米）"
        point = shapely.Point(event["lon"], event["lat"])
        lon, lat = factory.geometry(point)["coordinates"]
        folium.Marker([lat, lon], tooltip=f"事件 #{event_id}").add_to(fmap)
        shown.append(point.buffer(0.0005))
    if shown:
        fmap.fit_bounds(factory.bounds(np.array(shown, dtype=object)))
    folium.LayerControl(collapsed=True).add_to(fmap)
    body = (
        f"{html.escape(event['description'] or '')}<br>状态：{STATUS_LABELS.get(event['status'], event['status'])}"
        f" · 网格 {html.escape(event['grid_code'] or '待人工分派')}{runner_html}"
    )
    return HTMLResponse(finish(fmap, f"事件 #{event_id}", panel(f"事件 #{event_id}", body)))


@router.get(
    "/map/checks/{check_id}",
    response_class=HTMLResponse,
    responses={200: HTML},
    summary="覆盖检查报告: every finding drawn and listed, each zoomable",
)
def check_page(
    check_id: int, request: Request, connection: ConnectionDep, _: ReaderDep
) -> HTMLResponse:
    report = find_check(connection, check_id)
    if report is None:
        raise NotFound(
            f"没有编号为 {check_id} 的检查", code="check_not_found", where="path.check_id"
        )
    factory = _factory(request)
    fmap = factory.new_map()
    rows, geometries = map_queries.grid_layer(connection, report["generation"], level="grid")
    if rows:
        folium.GeoJson(
            feature_collection(
                factory, simplified(geometries), [{"name": r["name"]} for r in rows]
            ),
            name="网格",
            style_function=lambda _: {"color": "#718096", "weight": 1, "fillOpacity": 0},
        ).add_to(fmap)
        fmap.fit_bounds(factory.bounds(geometries))
    colours = {
        "overlaps": "#e53e3e",
        "gaps": "#d69e2e",
        "invalid_edges": "#805ad5",
        "outside_parent": "#dd6b20",
        "orphan_buildings": "#2b6cb0",
        "split_buildings": "#319795",
        "invalid_geometries": "#000000",
    }
    items = []
    for kind, colour in colours.items():
        group = folium.FeatureGroup(name=f"{KIND_LABELS[kind]}（{len(report.get(kind, []))}）")
        for finding in report.get(kind, []):
            if finding.get("geometry") is None:
                continue
            shape = shapely.from_geojson(json.dumps(finding["geometry"]))
            folium.GeoJson(
                factory.geometry(
                    shapely.buffer(shape, 0.00002)
                    if shape.geom_type.endswith("LineString")
                    else shape
                ),
                tooltip=finding["message"],
                style_function=lambda _, c=colour: {"color": c, "weight": 3, "fillOpacity": 0.5},
            ).add_to(group)
            bounds = factory.bounds(np.array([shapely.buffer(shape, 0.0003)]))
            items.append(
                f"<li><a href='#' onclick='{fmap.get_name()}.fitBounds({bounds});return false;'>"
                f"{html.escape(finding['message'])}</a></li>"
            )
        group.add_to(fmap)
    folium.LayerControl(collapsed=True).add_to(fmap)
    summary = report["summary"]
    body = (
        f"第 {report['generation']} 版 · 错误 {summary['errors']} 个 · 提示 {summary['warnings']} 个"
        f"<ol style='padding-left:18px'>{''.join(items[:300]) or '<li>未发现问题</li>'}</ol>"
    )
    return HTMLResponse(finish(fmap, f"覆盖检查 #{check_id}", panel(f"覆盖检查 #{check_id}", body)))


def mount(app: FastAPI) -> None:
    app.include_router(router)
    app.include_router(draft_pages.router)
    app.mount("/static/wangge", StaticFiles(directory=WEB_ROOT / "assets"), name="wangge-assets")
    if VENDOR.exists():
        app.mount("/static/vendor", StaticFiles(directory=VENDOR), name="vendor")
