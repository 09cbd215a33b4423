"""The supervisor's patrol map (巡查地图): /map/patrols?grid=CODE&from=&to=.

Micro-grids shaded by how many patrols entered them, the period's tracks drawn, and the
buildings nobody passed marked. Figures and tracks come from the same functions as
GET /api/v1/patrols/coverage and /patrols/{id}, so the page shows exactly what the caller may
read there (api/patrols/access.py): supervisors, dispatchers and admins every track; a field
worker their own grid and their own tracks.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any
from urllib.parse import urlencode

import folium
import numpy as np
import shapely
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from shapely.geometry import shape
from sqlalchemy import Connection

from api.db import patrols as patrol_rows
from api.deps import ConnectionDep, IndexStoreDep, ReaderDep, SettingsDep
from api.errors import error_responses
from api.lookup.index_store import IndexStore
from api.patrols.coverage import coverage_report
from api.patrols.views import list_patrols
from api.privacy import Caller
from api.settings import PatrolSettings
from api.tiles.matrix import KIND_MIN_ZOOM, MAX_ZOOM
from web.maps import VECTOR_GRID_JS, MapFactory, render_map, simplified
from web.render import page
from web.street import too_large_to_inline

router = APIRouter(
    tags=["map pages"],
    responses=error_responses(401, 403, 404, 422, 503),
    include_in_schema=False,
)
HTML: dict[str, Any] = {"content": {"text/html": {}}}
MAX_TRACKS = 300  # drawn on one page; the list API pages through the rest
# Fill of a micro-grid by patrols that entered it: none, one, two or three, four or more.
VISIT_SHADES = (
    (0, "#fc8181", "未巡查"),
    (1, "#c6f6d5", "1 次"),
    (3, "#68d391", "2–3 次"),
    (None, "#276749", "4 次及以上"),
)
UNVISITED_STYLE = {"color": "#c53030", "weight": 2, "fillColor": "#c53030", "fillOpacity": 0.6}
# The tiled not-passed buildings appear from z16: the buildings tiles exist from z15, but a
# 1920 px screen at z15 takes ~45 of them (~1.6 MB); at z16 the same screen is ~0.7 MB.
BUILDING_MIN_ZOOM = max(KIND_MIN_ZOOM["buildings"], MAX_ZOOM)
INLINE_LEVELS = ("grid", "micro_grid")  # scopes whose not-passed buildings may be inlined
TRACK_COLOURS = ("#2b6cb0", "#805ad5", "#d69e2e", "#319795", "#b83280", "#dd6b20")


def visit_colour(visits: int) -> str:
    for most, colour, _ in VISIT_SHADES:
        if most is None or visits <= most:
            return colour
    return VISIT_SHADES[-1][1]


def _building_tiles(factory: MapFactory, codes: list[str]) -> dict[str, Any]:
    """The not-passed buildings as a layer of /tiles/buildings: their codes, short.

    Codes are sent as one common prefix and the rest of each (a street's building codes share
    their first dozen characters), so 20,000 buildings cost ~0.3 MB, not 9 MB of footprints.
    """
    low, high = min(codes), max(codes)  # the sorted ends share what every code shares
    size = next((i for i, (a, b) in enumerate(zip(low, high, strict=False)) if a != b), len(low))
    prefix = low[:size]
    datum = "?crs=gcj02" if factory.overlay_crs == "GCJ02" else ""
    return {
        "tiles": f"/tiles/buildings/{{z}}/{{x}}/{{y}}.mvt{datum}",
        "vectorLayer": "buildings",
        "name": f"未经过的楼栋（{len(codes)}，{BUILDING_MIN_ZOOM} 级起显示）",
        "minZoom": BUILDING_MIN_ZOOM,
        "maxNativeZoom": MAX_ZOOM,
        "style": {**UNVISITED_STYLE, "fill": True},
        "prefix": prefix,
        "rest": [code[len(prefix) :] for code in codes],
        "count": len(codes),
    }


def _tracks(
    connection: Connection,
    store: IndexStore,
    caller: Caller,
    grid: str,
    start: date | None,
    end: date | None,
    settings: PatrolSettings,
) -> list[dict[str, Any]]:
    """The period's patrols crossing the grid that the caller may see, with their lines."""
    listed = list_patrols(
        connection,
        store,
        caller,
        staff_id=None,
        grid_code=grid,
        start=start,
        end=end,
        limit=MAX_TRACKS,
        offset=0,
        settings=settings,
    )
    drawn = []
    for patrol in listed["patrols"]:
        coords = patrol_rows.track_coordinates(connection, patrol["id"])
        if len(coords) >= 2:
            drawn.append({**patrol, "line": shapely.LineString(coords[:, :2])})
    return drawn


@router.get(
    "/map/patrols",
    response_class=HTMLResponse,
    responses={200: HTML},
    summary="巡查地图: micro-grids shaded by visits, tracks, buildings not passed",
)
def patrol_page(
    request: Request,
    connection: ConnectionDep,
    store: IndexStoreDep,
    settings: SettingsDep,
    principal: ReaderDep,
    grid: Annotated[str, Query(min_length=1, max_length=64)],
    start: Annotated[date | None, Query(alias="from")] = None,
    end: Annotated[date | None, Query(alias="to")] = None,
) -> HTMLResponse:
    path = "/map/patrols?" + urlencode({"grid": grid})
    if principal is None:
        return page(
            request,
            "patrols.html",
            title="巡查地图",
            heading="巡查地图",
            allowed=False,
            login_next=path,
        )
    caller = Caller(principal)
    report = coverage_report(
        connection,
        store,
        caller,
        grid_code=grid,
        start=start,
        end=end,
        staff_id=None,
        buffer_m=None,
        settings=settings.patrols,
    )
    tracks = _tracks(connection, store, caller, grid, start, end, settings.patrols)
    index = store.active()
    visits = {item["code"]: item["visits"] for item in report["micro_grid_visits"]}
    micro_codes = list(visits)
    micro_geoms = index.geometries[[index.by_code[c] for c in micro_codes]]
    factory = MapFactory(settings.maps)
    fmap = factory.new_map()
    layers = []
    micro_layer = folium.GeoJson(
        factory.feature_collection(
            simplified(micro_geoms),
            [
                {"code": c, "name": index.records[index.by_code[c]].name, "visits": visits[c]}
                for c in micro_codes
            ],
        ),
        name="微网格（按巡查次数着色）",
        style_function=lambda feature: {
            "color": "#4a5568",
            "weight": 1,
            "fillColor": visit_colour(feature["properties"]["visits"]),
            "fillOpacity": 0.45,
        },
    ).add_to(fmap)
    micro_spec: dict[str, Any] = {
        "layer": micro_layer.get_name(),
        "tooltip": {"fields": ["name", "visits"], "labels": ["微网格", "巡查次数"]},
    }
    if report["grid"]["level"] not in INLINE_LEVELS:
        # Above a grid a click on a micro-grid offers its own patrol map (buildings drawn there).
        micro_spec["popup"] = "/map/patrols?grid="
    layers.append(micro_spec)
    owners: dict[Any, str] = {}
    for track in tracks:
        key = track["staff_id"] or f"token:{track['token_id']}"
        owners.setdefault(key, TRACK_COLOURS[len(owners) % len(TRACK_COLOURS)])
        track["colour"] = owners[key]
    track_list = [
        {
            "id": t["id"],
            "who": t["staff_name"] or f"令牌 {t['token_id']}",
            "started": t["started_at"][:16].replace("T", " "),
            "colour": t["colour"],
        }
        for t in tracks
    ]
    if tracks:
        track_layer = folium.GeoJson(
            factory.feature_collection(
                np.array([t["line"] for t in tracks], dtype=object),
                [
                    {**item, "length": t["length_m"]}
                    for item, t in zip(track_list, tracks, strict=True)
                ],
            ),
            name=f"巡查轨迹（{len(tracks)}）",
            style_function=lambda feature: {"color": feature["properties"]["colour"], "weight": 3},
        ).add_to(fmap)
        layers.append(
            {
                "layer": track_layer.get_name(),
                "tooltip": {
                    "fields": ["who", "started", "length"],
                    "labels": ["巡查人", "开始", "长度（米）"],
                },
            }
        )
    unvisited = [
        f for f in report["not_visited"]["features"] if f["properties"]["kind"] == "building"
    ]
    geoms = np.array([shape(f["geometry"]) for f in unvisited], dtype=object)
    building_tiles = None
    level = report["grid"]["level"]
    if len(geoms) and (level not in INLINE_LEVELS or too_large_to_inline(factory, geoms)):
        # A street's or a community's thousands of footprints would be megabytes of GeoJSON
        # (a street's 20,000: 9 MB): they come from the vector tiles (/tiles/buildings, from
        # BUILDING_MIN_ZOOM) and web/assets/patrols.js fills those whose code is listed here.
        fmap.default_js = [*fmap.default_js, *VECTOR_GRID_JS]
        building_tiles = _building_tiles(factory, [f["properties"]["code"] for f in unvisited])
    elif len(geoms):
        building_layer = folium.GeoJson(
            factory.feature_collection(
                geoms,
                [
                    {"code": f["properties"]["code"], "address": f["properties"]["address"]}
                    for f in unvisited
                ],
            ),
            name=f"未经过的楼栋（{len(unvisited)}）",
            style_function=lambda _: UNVISITED_STYLE,
        ).add_to(fmap)
        layers.append(
            {
                "layer": building_layer.get_name(),
                "tooltip": {"fields": ["address", "code"], "labels": ["未经过", "编码"]},
            }
        )
    folium.LayerControl(collapsed=True).add_to(fmap)
    fmap.fit_bounds(factory.bounds(np.array([index.geometries[index.by_code[grid]]])))
    rendered = render_map(fmap)
    return page(
        request,
        "patrols.html",
        title=f"{report['grid']['name']} · 巡查地图",
        heading=f"{report['grid']['name']} · 巡查覆盖",
        allowed=True,
        map=rendered,
        report=report,
        track_list=track_list,
        shades=[(colour, label) for _, colour, label in VISIT_SHADES],
        building_tiles=building_tiles,
        page_data={
            "map": rendered.name,
            "layers": layers,
            "buildings": building_tiles,
            "tracks": {
                str(t["id"]): factory.bounds(np.array([t["line"]], dtype=object)) for t in tracks
            },
        },
    )
