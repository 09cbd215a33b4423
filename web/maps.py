"""Folium map builders for the field: street overview, grid, event and coverage-report pages.

Every script and stylesheet comes from /static/vendor (npm, served by wangge). The basemap is
configurable: none (default, works offline), Tianditu (WGS84-aligned, needs a key), AMap
(GCJ-02 tiles: every overlay is converted to GCJ-02 on the server so it lines up) or any XYZ URL.
"""

from __future__ import annotations

import html
import json
from typing import Any

import folium
import numpy as np
import shapely
from shapely.geometry import mapping

from api.settings import MapSettings
from spatial.coverage import camera_sector
from spatial.crs import WGS84, metric_crs_for, transform

LOCAL_JS = [("leaflet", "/static/vendor/leaflet/dist/leaflet.js")]
LOCAL_CSS = [("leaflet_css", "/static/vendor/leaflet/dist/leaflet.css")]
STATUS_COLOURS = {
    "received": "#dd6b20",
    "dispatched": "#3182ce",
    "processing": "#805ad5",
    "resolved": "#38a169",
    "closed": "#718096",
}
STATUS_LABELS = {
    "received": "已受理",
    "dispatched": "已派遣",
    "processing": "处理中",
    "resolved": "已办结",
    "closed": "已结案",
    "cancelled": "已撤销",
}
CHOROPLETH = ("#f7fbff", "#c6dbef", "#6baed6", "#2171b5", "#08306b")
PAGE_STYLE = """<style>
.wg-panel{position:absolute;top:10px;left:50px;right:10px;z-index:1000;background:#fff;padding:8px 12px;
border-radius:6px;box-shadow:0 1px 4px rgba(0,0,0,.3);font:15px/1.5 sans-serif;max-width:440px;max-height:45vh;overflow:auto}
.wg-panel h1{font-size:17px;margin:0 0 4px}.wg-panel a{color:#2b6cb0}
.wg-legend{position:absolute;bottom:24px;right:10px;z-index:1000;background:#fff;padding:6px 10px;border-radius:6px;
font:13px sans-serif;box-shadow:0 1px 4px rgba(0,0,0,.3)}.wg-legend i{display:inline-block;width:14px;height:14px;margin-right:6px;vertical-align:middle}
.wg-locate{position:absolute;bottom:170px;right:10px;z-index:1000;font-size:16px;padding:10px 12px;border-radius:6px;border:1px solid #999;background:#fff}
.leaflet-control-layers{font-size:15px}
</style>"""


class MapFactory:
    """Builds folium maps whose overlays line up with the configured basemap."""

    def __init__(self, settings: MapSettings) -> None:
        self.settings = settings
        # AMap tiles are GCJ-02: shift every overlay there so it lines up on the screen.
        self.overlay_crs = "GCJ02" if settings.basemap == "amap" else WGS84

    def new_map(self) -> folium.Map:
        fmap = folium.Map(tiles=None, control_scale=True, prefer_canvas=True)
        fmap.default_js = LOCAL_JS
        fmap.default_css = LOCAL_CSS
        basemap = self.settings.basemap
        if basemap == "tianditu" and self.settings.tianditu_token:
            token = self.settings.tianditu_token
            for layer, name in (("vec", "天地图矢量"), ("cva", "天地图注记")):
                folium.TileLayer(
                    f"https://t0.tianditu.gov.cn/{layer}_w/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0&LAYER={layer}"
                    f"&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles&TILEMATRIX={{z}}&TILEROW={{y}}&TILECOL={{x}}&tk={token}",
                    attr="天地图",
                    name=name,
                    overlay=layer == "cva",
                ).add_to(fmap)
        elif basemap == "amap":
            folium.TileLayer(
                "https://webrd01.is.autonavi.com/appmaptile?lang=zh_cn&size=1&scale=1&style=8&x={x}&y={y}&z={z}",
                attr="高德地图",
                name="高德地图",
            ).add_to(fmap)
        elif basemap not in ("none", "", "tianditu"):
            folium.TileLayer(basemap, attr="底图", name="底图").add_to(fmap)
        return fmap

    def geometry(self, geometry: shapely.Geometry) -> dict[str, Any]:
        shifted = transform(geometry, WGS84, self.overlay_crs)
        return mapping(shapely.set_precision(shifted, 1e-7))

    def bounds(self, geometries: np.ndarray) -> list[list[float]]:
        xmin, ymin, xmax, ymax = shapely.total_bounds(
            transform(geometries, WGS84, self.overlay_crs)
        )
        return [[ymin, xmin], [ymax, xmax]]


def simplified(geometries: np.ndarray, tolerance_m: float = 1.0) -> np.ndarray:
    """Coverage-preserving simplification: neighbours keep sharing their edges."""
    if len(geometries) == 0:
        return geometries
    metric_crs = metric_crs_for(geometries)
    simple = shapely.coverage_simplify(transform(geometries, WGS84, metric_crs), tolerance_m)
    return transform(simple, metric_crs, WGS84)


def feature_collection(
    factory: MapFactory, geometries: np.ndarray, properties: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "geometry": factory.geometry(g), "properties": p}
            for g, p in zip(geometries, properties, strict=True)
        ],
    }


def choropleth_colour(value: int, breaks: list[int]) -> str:
    for colour, limit in zip(CHOROPLETH, breaks, strict=False):
        if value <= limit:
            return colour
    return CHOROPLETH[-1]


def legend(title: str, rows: list[tuple[str, str]]) -> str:
    items = "".join(
        f"<div><i style='background:{c}'></i>{html.escape(label)}</div>" for c, label in rows
    )
    return f"<div class='wg-legend'><b>{html.escape(title)}</b>{items}</div>"


def panel(title: str, body_html: str) -> str:
    return f"<div class='wg-panel'><h1>{html.escape(title)}</h1>{body_html}</div>"


def finish(fmap: folium.Map, title: str, extra_html: str = "", script: str = "") -> str:
    """Add the page chrome (title, panel, styles, locate-me) and render the page."""
    root: Any = fmap.get_root()
    root.title = title
    locate = "<button class='wg-locate' id='wg-locate' title='定位到我的位置'>◎ 定位</button>"
    root.html.add_child(folium.Element(PAGE_STYLE + extra_html + locate))
    map_name = fmap.get_name()
    # folium renders the map's own script after elements added here: run once the page has loaded.
    root.script.add_child(
        folium.Element(
            "window.addEventListener('load',function(){"
            f"document.getElementById('wg-locate').onclick=function(){{{map_name}.locate({{setView:true,maxZoom:18}});}};"
            f"{map_name}.on('locationfound',function(e){{L.circleMarker(e.latlng,{{radius:8,color:'#e53e3e'}}).addTo({map_name});}});"
            + script
            + "});"
        )
    )
    return str(root.render())


def camera_layer(factory: MapFactory, cameras: list[dict[str, Any]]) -> folium.FeatureGroup:
    """Monitoring points and their field-of-view sectors."""
    group = folium.FeatureGroup(name="监控点及视域")
    if not cameras:
        return group
    points = np.array([shapely.Point(c["lon"], c["lat"]) for c in cameras])
    metric_crs = metric_crs_for(points)
    metric = transform(points, WGS84, metric_crs)
    for camera, point in zip(cameras, metric, strict=True):
        online = camera["status"] == "online"
        label = f"{camera['name'] or camera['code']}（{'在线' if online else camera['status']}）"
        if camera["heading_deg"] is not None and camera["fov_deg"] and camera["range_m"]:
            sector = transform(
                camera_sector(point, camera["heading_deg"], camera["fov_deg"], camera["range_m"]),
                metric_crs,
                WGS84,
            )
            folium.GeoJson(
                factory.geometry(sector),
                tooltip=label,
                style_function=lambda _, on=online: {
                    "color": "#2f855a" if on else "#a0aec0",
                    "weight": 1,
                    "fillOpacity": 0.15,
                },
            ).add_to(group)
        lon, lat = factory.geometry(shapely.Point(camera["lon"], camera["lat"]))["coordinates"]
        folium.CircleMarker(
            [lat, lon],
            radius=4,
            color="#22543d" if online else "#718096",
            fill=True,
            fill_opacity=1,
            tooltip=label,
        ).add_to(group)
    return group


def json_script(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False).replace("</", "<\\/")
