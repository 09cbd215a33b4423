"""Planner pages: the draft list, the map editor (Leaflet-Geoman) and the diff map."""

from __future__ import annotations

import html
from typing import Any

import folium
import numpy as np
import shapely
from branca.element import MacroElement
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from folium.elements import JSCSSMixin
from folium.template import Template
from shapely.geometry import mapping

from api.db import grids as grid_queries
from api.deps import ConnectionDep, ReaderDep
from api.drafts.diff import diff_with_outlines
from api.drafts.store import fetch, list_drafts
from api.errors import InvalidInput
from spatial.crs import WGS84, transform
from web.maps import MapFactory, feature_collection, finish, json_script, legend, panel

router = APIRouter(tags=["map pages"])
HTML: dict[str, Any] = {"content": {"text/html": {}}}
GEOMAN = "/static/vendor/@geoman-io/leaflet-geoman-free/dist"
EDITOR_STYLE = """<style>
.wg-editor button{font-size:15px;padding:6px 10px;margin:4px 4px 0 0;border-radius:4px;border:1px solid #999;background:#fff}
#wg-status{font-weight:bold}
</style>"""


class GeomanAssets(JSCSSMixin, MacroElement):
    """Leaflet-Geoman's script and style, from wangge's own /static/vendor (installed by npm)."""

    _template = Template("")
    default_js = [  # noqa: RUF012 (folium's own attribute)
        ("leaflet_geoman_js", f"{GEOMAN}/leaflet-geoman.js")
    ]
    default_css = [  # noqa: RUF012
        ("leaflet_geoman_css", f"{GEOMAN}/leaflet-geoman.css")
    ]


def _factory(request: Request) -> MapFactory:
    return MapFactory(request.app.state.settings.maps)


def _child_level(connection: ConnectionDep, level: str) -> str | None:
    """The level below `level` (its grids are drawn as snapping targets), or None."""
    levels = [lv["name"] for lv in grid_queries.levels(connection)]
    if level not in levels:
        raise InvalidInput(
            f"没有名为 {level} 的层级（现有：{'、'.join(levels)}）",
            code="level_not_found",
            where="query.level",
        )
    index = levels.index(level)
    return levels[index + 1] if index + 1 < len(levels) else None


@router.get(
    "/map/editor",
    response_class=HTMLResponse,
    responses={200: HTML},
    summary="草稿列表: open drafts, start a new one or an auto-suggested partition",
)
def editor_home(connection: ConnectionDep, _: ReaderDep) -> HTMLResponse:
    rows = "".join(
        f"<li><b>{html.escape(d['name'])}</b>（#{d['id']}，版本 {d['version']}，{html.escape(d['created_by'])}）"
        f" <a href='/map/drafts/{d['id']}/edit'>编辑</a> · <a href='/map/drafts/{d['id']}/diff'>差异</a></li>"
        for d in list_drafts(connection, "open")
    )
    page = f"""<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>网格草稿 · wangge</title>
<style>body{{font:16px sans-serif;margin:1em auto;max-width:640px;padding:0 1em}}input,button{{font-size:16px;padding:6px}}</style>
</head><body><h1>网格草稿</h1><ul>{rows or "<li>暂无草稿</li>"}</ul>
<h2>新建草稿</h2><p><input id="name" placeholder="草稿名称，如：拆分过满网格"> <button id="new">从当前版本新建</button></p>
<h2>自动划分建议</h2><p><input id="community" placeholder="社区编码"> <button id="suggest">按 300–500 户划分</button></p>
<p id="msg"></p><p><a href="/map/login?next=/map/editor">登录（需要规划员令牌）</a></p>
<script>
function post(path, body){{return fetch('/api/v1'+path,{{method:'POST',credentials:'same-origin',
headers:{{'Content-Type':'application/json','X-Wangge-Page':'1'}},body:JSON.stringify(body)}})
.then(function(r){{return r.json().then(function(j){{if(!r.ok)throw j.error;location='/map/drafts/'+j.id+'/edit';}});}})
.catch(function(e){{document.getElementById('msg').textContent=e.message||'失败';}});}}
document.getElementById('new').onclick=function(){{post('/drafts',{{name:document.getElementById('name').value||'未命名草稿'}});}};
document.getElementById('suggest').onclick=function(){{post('/drafts/suggest',{{community:document.getElementById('community').value}});}};
</script></body></html>"""
    return HTMLResponse(page)


@router.get(
    "/map/drafts/{draft_id}/edit",
    response_class=HTMLResponse,
    responses={200: HTML},
    summary="草稿编辑: drag boundaries with snapping, split along a line, undo; checks and statistics refresh",
)
def editor_page(
    draft_id: int,
    request: Request,
    connection: ConnectionDep,
    _: ReaderDep,
    level: str = "grid",
) -> HTMLResponse:
    draft = fetch(connection, draft_id)
    child_level = _child_level(connection, level)
    factory = _factory(request)
    fmap = factory.new_map()
    GeomanAssets().add_to(fmap)
    config = {
        "map": fmap.get_name(),
        "draft": draft_id,
        "version": draft["version"],
        "generation": draft["generation_id"],
        "level": level,
        "childLevel": child_level,
        "outCrs": "gcj02" if factory.overlay_crs == "GCJ02" else "EPSG:4326",
    }
    closed = (
        ""
        if draft["status"] == "open"
        else f"<p style='color:#c53030'>此草稿已{draft['status']}，只读</p>"
    )
    body = (
        f"{closed}<div class='wg-editor'>版本 <span id='wg-version'>{draft['version']}</span> · "
        f"<a href='/map/drafts/{draft_id}/diff'>与现行版本的差异</a><br>"
        "<button id='wg-split'>✂ 画线分割</button><button id='wg-undo'>↶ 撤销</button>"
        "<button id='wg-check-now'>检查</button><button id='wg-publish'>发布</button>"
        "<div id='wg-status'>加载中…</div><div id='wg-stats'></div><div id='wg-check'></div></div>"
    )
    rows = legend(
        "户数", [("#e53e3e", "超过上限"), ("#38a169", "在范围内"), ("#dd6b20", "低于下限")]
    )
    script = (
        f"window.WG_EDITOR={json_script(config)};"
        "var s=document.createElement('script');s.src='/static/wangge/editor.js';document.body.appendChild(s);"
    )
    title = f"编辑草稿：{draft['name']}"
    return HTMLResponse(finish(fmap, title, EDITOR_STYLE + panel(title, body) + rows, script))


@router.get(
    "/map/drafts/{draft_id}/diff",
    response_class=HTMLResponse,
    responses={200: HTML},
    summary="草稿差异: changed grids before and after; buildings, cameras and open events that change grid",
)
def diff_page(
    draft_id: int, request: Request, connection: ConnectionDep, _: ReaderDep
) -> HTMLResponse:
    diff, outlines = diff_with_outlines(connection, draft_id)
    draft = fetch(connection, draft_id)
    factory = _factory(request)
    fmap = factory.new_map()
    changes = {g["code"]: g for g in diff["grids"]}
    colours = {"added": "#38a169", "removed": "#e53e3e", "changed": "#3182ce"}
    for side, dash, name in (("before", "6 4", "现行边界"), ("after", None, "草稿边界")):
        shown = [(c, g) for c, g in outlines[side] if c in changes]
        if not shown:
            continue
        geometries = np.array([g for _, g in shown], dtype=object)
        properties = [
            {
                "code": c,
                "label": f"{changes[c]['name']}（{c}）面积变化 {changes[c]['area_change_m2']:+.0f} m²",
                "colour": colours[changes[c]["change"]],
            }
            for c, _ in shown
        ]
        folium.GeoJson(
            feature_collection(factory, geometries, properties),
            name=name,
            style_function=lambda f, d=dash, s=side: {
                "color": "#4a5568" if s == "before" else f["properties"]["colour"],
                "weight": 2,
                "dashArray": d,
                "fillOpacity": 0 if s == "before" else 0.25,
                "fillColor": f["properties"]["colour"],
            },
            tooltip=folium.GeoJsonTooltip(fields=["label"], labels=False),
        ).add_to(fmap)
        fmap.fit_bounds(factory.bounds(geometries))
    for key, colour, name in (
        ("buildings", "#975a16", "改变网格的楼栋"),
        ("monitoring_points", "#2f855a", "改变网格的监控点"),
        ("open_events", "#c53030", "改派的在办事件"),
    ):
        group = folium.FeatureGroup(name=f"{name}（{len(diff[key])}）")
        for item in diff[key][:2000]:
            lon, lat = mapping(
                transform(shapely.Point(item["lon"], item["lat"]), WGS84, factory.overlay_crs)
            )["coordinates"]
            label = f"{item.get('code') or '#' + str(item.get('id'))}：{item['from_grid']} → {item['to_grid']}"
            folium.CircleMarker(
                [lat, lon], radius=5, color=colour, fill=True, fill_opacity=0.9, tooltip=label
            ).add_to(group)
        group.add_to(fmap)
    folium.LayerControl(collapsed=True).add_to(fmap)
    summary = diff["summary"]
    table = "".join(
        f"<tr><td>{html.escape(g['code'])}</td><td>{html.escape(g['name'])}</td><td>{ {'added': '新增', 'removed': '删除', 'changed': '修改'}[g['change']] }</td>"
        f"<td style='text-align:right'>{g['area_change_m2']:+,.0f}</td></tr>"
        for g in diff["grids"][:200]
    )
    body = (
        f"草稿 #{draft_id}（第 {diff['generation']} 版）对比现行第 {diff['against_generation']} 版：<br>"
        f"新增网格 {summary['grids_added']}，删除 {summary['grids_removed']}，修改 {summary['grids_changed']}；"
        f"改变网格的楼栋 {summary['buildings_moving']}（{summary['households_moving']} 户），"
        f"监控点 {summary['monitoring_points_moving']}，在办事件 {summary['open_events_moving']}。"
        f" <a href='/map/drafts/{draft_id}/edit'>返回编辑</a>"
        "<table style='font-size:13px;border-collapse:collapse'><tr><th>编码</th><th>名称</th><th>变化</th><th>面积变化 m²</th></tr>"
        f"{table}</table>"
    )
    title = f"草稿差异：{draft['name']}"
    return HTMLResponse(finish(fmap, title, panel(title, body)))
