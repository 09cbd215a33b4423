"""Folium map builders for the field: basemaps, overlays in the basemap's datum, folium's output.

Every script and stylesheet comes from /static/vendor (npm, served by wangge). The basemap is
configurable: none (default, works offline), Tianditu (WGS84-aligned, needs a key), AMap
(GCJ-02 tiles: every overlay is converted to GCJ-02 on the server so it lines up) or any XYZ URL.

folium draws; it never writes our data as markup. Tooltips, popups and links are bound by
web/assets/map.js from the features' properties, as text (folium's own tooltips and popups build
HTML from whatever they are given).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import folium
import numpy as np
import shapely
from branca.element import CssLink, JavascriptLink
from markupsafe import Markup
from shapely.geometry import mapping

from api.settings import MapSettings
from api.workflow.machine import LABELS_ZH
from spatial.coverage import camera_sector
from spatial.crs import WGS84, metric_crs_for, transform

LOCAL_JS = [("leaflet", "/static/vendor/leaflet/dist/leaflet.js")]
LOCAL_CSS = [("leaflet_css", "/static/vendor/leaflet/dist/leaflet.css")]
# Vector tiles on maps whose layers are too large to inline (web/street.py); after Leaflet,
# before folium's own script (web/assets/map_tiles.js notes the layer control it makes).
VECTOR_GRID_JS = [
    (
        "leaflet_vectorgrid",
        "/static/vendor/leaflet.vectorgrid/dist/Leaflet.VectorGrid.bundled.min.js",
    ),
    ("wangge_map_tiles", "/static/wangge/map_tiles.js"),
]
STATUS_COLOURS = {
    "reported": "#dd6b20",
    "accepted": "#d69e2e",
    "returned": "#e53e3e",
    "dispatched": "#3182ce",
    "processing": "#805ad5",
    "handled": "#38a169",
    "closed": "#718096",
    "evaluated": "#718096",
}
STATUS_LABELS = {state.value: label for state, label in LABELS_ZH.items()}
CHOROPLETH = ("#f7fbff", "#c6dbef", "#6baed6", "#2171b5", "#08306b")
AMAP_TILES = (
    "https://webrd01.is.autonavi.com/appmaptile?lang=zh_cn&size=1&scale=1&style=8&x={x}&y={y}&z={z}"
)
TIANDITU_TILES = (
    "https://t0.tianditu.gov.cn/{layer}_w/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0"
    "&LAYER={layer}&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles&TILEMATRIX={{z}}&TILEROW={{y}}"
    "&TILECOL={{x}}&tk={token}"
)


@dataclass(frozen=True)
class TileSource:
    url: str
    attribution: str
    name: str
    overlay: bool = False


class MapFactory:
    """Builds folium maps whose overlays line up with the configured basemap."""

    def __init__(self, settings: MapSettings) -> None:
        self.settings = settings
        # AMap tiles are GCJ-02: shift every overlay there so it lines up on the screen.
        self.overlay_crs = "GCJ02" if settings.basemap == "amap" else WGS84

    @property
    def api_crs(self) -> str:
        """The `out_crs` the pages ask the GeoJSON API for."""
        return "gcj02" if self.overlay_crs == "GCJ02" else "EPSG:4326"

    def tiles(self) -> list[TileSource]:
        basemap = self.settings.basemap
        if basemap == "tianditu" and self.settings.tianditu_token:
            token = self.settings.tianditu_token
            return [
                TileSource(
                    TIANDITU_TILES.format(layer=layer, token=token), "天地图", name, layer == "cva"
                )
                for layer, name in (("vec", "天地图矢量"), ("cva", "天地图注记"))
            ]
        if basemap == "amap":
            return [TileSource(AMAP_TILES, "高德地图", "高德地图")]
        if basemap not in ("none", "", "tianditu"):
            return [TileSource(basemap, "底图", "底图")]
        return []

    def new_map(self) -> folium.Map:
        fmap = folium.Map(tiles=None, control_scale=True, prefer_canvas=True)
        fmap.default_js = LOCAL_JS
        fmap.default_css = LOCAL_CSS
        for tile in self.tiles():
            folium.TileLayer(
                tile.url, attr=tile.attribution, name=tile.name, overlay=tile.overlay
            ).add_to(fmap)
        return fmap

    def geometry(self, geometry: shapely.Geometry) -> dict[str, Any]:
        shifted = transform(geometry, WGS84, self.overlay_crs)
        return mapping(shapely.set_precision(shifted, 1e-7))

    def bounds(self, geometries: np.ndarray) -> list[list[float]]:
        xmin, ymin, xmax, ymax = shapely.total_bounds(
            transform(geometries, WGS84, self.overlay_crs)
        )
        return [[ymin, xmin], [ymax, xmax]]

    def feature_collection(
        self, geometries: np.ndarray, properties: list[dict[str, Any]]
    ) -> dict[str, Any]:
        return {
            "type": "FeatureCollection",
            "features": [
                {"type": "Feature", "geometry": self.geometry(g), "properties": p}
                for g, p in zip(geometries, properties, strict=True)
            ],
        }


def simplified(geometries: np.ndarray, tolerance_m: float = 1.0) -> np.ndarray:
    """Coverage-preserving simplification: neighbours keep sharing their edges."""
    if len(geometries) == 0:
        return geometries
    metric_crs = metric_crs_for(geometries)
    simple = shapely.coverage_simplify(transform(geometries, WGS84, metric_crs), tolerance_m)
    return transform(simple, metric_crs, WGS84)


def camera_layer(factory: MapFactory, cameras: list[dict[str, Any]]) -> folium.GeoJson:
    """Monitoring points and their field-of-view sectors (property `label` for the tooltip)."""
    features = []
    points = np.array([shapely.Point(c["lon"], c["lat"]) for c in cameras], dtype=object)
    metric_crs = metric_crs_for(points) if cameras else WGS84
    metric = transform(points, WGS84, metric_crs) if cameras else points
    for camera, point in zip(cameras, metric, strict=True):
        online = camera["status"] == "online"
        properties = {
            "label": f"{camera['name'] or camera['code']}（{'在线' if online else camera['status']}）",
            "online": online,
        }
        if camera["heading_deg"] is not None and camera["fov_deg"] and camera["range_m"]:
            sector = transform(
                camera_sector(point, camera["heading_deg"], camera["fov_deg"], camera["range_m"]),
                metric_crs,
                WGS84,
            )
            features.append(
                {"type": "Feature", "geometry": factory.geometry(sector), "properties": properties}
            )
        location = factory.geometry(shapely.Point(camera["lon"], camera["lat"]))
        features.append({"type": "Feature", "geometry": location, "properties": properties})
    return folium.GeoJson(
        {"type": "FeatureCollection", "features": features},
        name="监控点及视域",
        marker=folium.CircleMarker(radius=4, fill=True, fill_opacity=1),
        style_function=lambda f: _camera_style(f["geometry"]["type"], f["properties"]["online"]),
    )


def _camera_style(geometry_type: str, online: bool) -> dict[str, Any]:
    if geometry_type == "Point":
        return {"color": "#22543d" if online else "#718096", "fillOpacity": 1}
    return {"color": "#2f855a" if online else "#a0aec0", "weight": 1, "fillOpacity": 0.15}


@dataclass(frozen=True)
class RenderedMap:
    """What folium made of a map, for a page template: the map's global name, the scripts and
    stylesheets it links, its container and its script (which carries no nonce of its own)."""

    name: str
    scripts: tuple[str, ...]
    stylesheets: tuple[str, ...]
    head: Markup
    container: Markup
    script: Markup


class UnsafeFoliumOutput(RuntimeError):
    """folium produced markup the page template cannot vouch for."""


# folium's page chrome that the template replaces: its content-type meta, and the map's own head
# (a zoom-locking viewport, its sizing and an inline script setting two globals Leaflet reads
# as false when absent). web/assets/map.css sizes the map instead.
_REPLACED_HEAD = ("meta_http",)


def render_map(fmap: folium.Map) -> RenderedMap:
    """Render folium's map without its page, so the template can nonce every script itself."""
    root: Any = fmap.get_root()
    for child in root._children.values():
        child.render()
    scripts, stylesheets, head = [], [], []
    for name, element in root.header._children.items():
        if isinstance(element, JavascriptLink):
            scripts.append(element.url)
        elif isinstance(element, CssLink):
            stylesheets.append(element.url)
        elif name not in _REPLACED_HEAD and name != fmap.get_name():
            markup = element.render()
            if "<script" in markup.lower():
                raise UnsafeFoliumOutput(f"folium put a script in the page head ({name})")
            head.append(markup)
    container = root.html.render().strip()
    script = root.script.render().strip()
    # folium writes data with |tojson (every "<" escaped), so neither may appear: if one does,
    # something wrote raw text into the map and it must not run with our nonce.
    if "<script" in container.lower() or "</script" in script.lower() or "<!--" in script:
        raise UnsafeFoliumOutput("folium output holds markup that could end or open a script")
    return RenderedMap(
        name=fmap.get_name(),
        scripts=tuple(scripts),
        stylesheets=tuple(stylesheets),
        head=Markup("".join(head)),  # noqa: S704 (folium's own styles, checked above)
        container=Markup(container),  # noqa: S704 (folium's map container, checked above)
        script=Markup(script),  # noqa: S704 (folium's map script, checked above)
    )
