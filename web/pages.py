"""Map pages. Every script and stylesheet is served from /static/vendor (installed from npm),
never from a CDN: field staff open these pages without internet.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import folium
from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text

from api.db.generations import NoActiveGeneration, generation_at
from api.deps import ConnectionDep, ReaderDep

WEB_ROOT = Path(__file__).resolve().parent
VENDOR = WEB_ROOT / "node_modules"
LOCAL_JS = [("leaflet", "/static/vendor/leaflet/dist/leaflet.js")]
LOCAL_CSS = [("leaflet_css", "/static/vendor/leaflet/dist/leaflet.css")]

router = APIRouter(tags=["map pages"])


def offline_map(**options: Any) -> folium.Map:
    """A folium map that loads only wangge's own copies of Leaflet, with no tile layer by default."""
    fmap = folium.Map(tiles=None, control_scale=True, **options)
    fmap.default_js = LOCAL_JS
    fmap.default_css = LOCAL_CSS
    return fmap


def _layer(connection: ConnectionDep, generation: int, level: str) -> dict[str, Any]:
    rows = connection.execute(
        text(
            "SELECT code, name, households, ST_AsGeoJSON(geom, 7) AS geometry FROM grid "
            "WHERE level = :level AND generation_low <= :g AND generation_high >= :g ORDER BY code"
        ),
        {"level": level, "g": generation},
    ).all()
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": json.loads(r.geometry),
                "properties": {"code": r.code, "name": r.name, "households": r.households},
            }
            for r in rows
        ],
    }


@router.get(
    "/", response_class=HTMLResponse, summary="Home page: the street's communities and grids"
)
def home(connection: ConnectionDep, _: ReaderDep) -> HTMLResponse:
    try:
        generation = generation_at(connection)
    except NoActiveGeneration:
        return HTMLResponse(
            _page(
                "wangge", "<p>还没有网格数据：运行 <code>wangge demo load</code> 或导入网格。</p>"
            )
        )
    counts = connection.execute(
        text(
            "SELECT l.label_zh, count(*) FROM grid g JOIN grid_level l ON l.name = g.level "
            "WHERE g.generation_low <= :g AND g.generation_high >= :g GROUP BY l.rank, l.label_zh "
            "ORDER BY l.rank"
        ),
        {"g": generation},
    ).all()
    street = connection.execute(
        text(
            "SELECT name, ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM ("
            "SELECT name, ST_Extent(geom) OVER () AS e, level FROM grid "
            "WHERE generation_low <= :g AND generation_high >= :g ORDER BY level = 'street' DESC LIMIT 1) s"
        ),
        {"g": generation},
    ).first()
    fmap = offline_map()
    grids = folium.GeoJson(
        _layer(connection, generation, "grid"),
        name="网格",
        style_function=lambda _: {"color": "#2b6cb0", "weight": 1, "fillOpacity": 0.08},
        tooltip=folium.GeoJsonTooltip(
            ["name", "code", "households"], aliases=["网格", "编码", "户数"]
        ),
    )
    communities = folium.GeoJson(
        _layer(connection, generation, "community"),
        name="社区",
        style_function=lambda _: {"color": "#c53030", "weight": 3, "fill": False},
    )
    grids.add_to(fmap)
    communities.add_to(fmap)
    folium.LayerControl(collapsed=False).add_to(fmap)
    if street:
        fmap.fit_bounds([[street[2], street[1]], [street[4], street[3]]])
    summary = "，".join(f"{label} {count} 个" for label, count in counts)
    panel = (
        f"<div id='wangge-panel'><b>{html.escape(street[0] if street else 'wangge')}</b>"
        f"（第 {generation} 版）<br>{html.escape(summary)}<br>"
        "<a href='/api/v1/docs'>API 文档</a> · <a href='/api/v1/grids?level=community'>社区 GeoJSON</a>"
        " · <a href='/api/v1/export/grids?format=gpkg'>导出网格</a></div>"
    )
    root: Any = fmap.get_root()  # a branca Figure
    root.html.add_child(folium.Element(panel + _PANEL_STYLE))
    root.title = "wangge 网格总览"
    return HTMLResponse(root.render())


_PANEL_STYLE = (
    "<style>#wangge-panel{position:absolute;top:10px;left:50px;z-index:1000;background:#fff;"
    "padding:8px 12px;border-radius:4px;box-shadow:0 1px 4px rgba(0,0,0,.3);font:14px sans-serif;"
    "max-width:70vw}</style>"
)


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title></head><body>{body}</body></html>"
    )


def mount(app: FastAPI) -> None:
    app.include_router(router)
    if VENDOR.exists():
        app.mount("/static/vendor", StaticFiles(directory=VENDOR), name="vendor")
