"""Planner pages: the draft list, the map editor (Leaflet-Geoman) and the diff map."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import folium
import numpy as np
import shapely
from branca.element import MacroElement
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from folium.elements import JSCSSMixin
from folium.template import Template
from markupsafe import escape
from shapely.geometry import mapping

from api.auth import Permission, Principal
from api.coverage import KIND_LABELS as KIND_LABELS_CHECK
from api.db.catalogue import grid_kinds, grid_levels
from api.db.drafts import find_drafts
from api.db.filters import Page
from api.db.generations import generation_at
from api.db.grids import select_grids
from api.deps import ConnectionDep, ReaderDep
from api.drafts.diff import diff_with_outlines
from api.drafts.versions import draft_by_id
from api.errors import error_responses
from api.privacy import Caller, public_actor
from api.routes.params import known_level
from spatial.coverage_report import WARNING_KINDS
from spatial.crs import WGS84, transform
from web.maps import MapFactory, render_map
from web.render import page

router = APIRouter(tags=["map pages"], responses=error_responses(401, 403, 404, 422, 503))
HTML: dict[str, Any] = {"content": {"text/html": {}}}
GEOMAN = "/static/vendor/@geoman-io/leaflet-geoman-free/dist"
CHANGE_LABELS = {"added": "新增", "removed": "删除", "changed": "修改"}
HOUSEHOLD_SHADES = (("#e53e3e", "超过上限"), ("#38a169", "在范围内"), ("#dd6b20", "低于下限"))
KIND_LABELS = {"residential": "村居", "commercial": "商圈", "office": "楼宇", "other": "其他"}
SOURCE_LABELS = {
    "copy": "复制现行版本",
    "suggest": "自动划分建议",
    "fix": "覆盖修复建议",
    "import": "文件导入",
}
CHINA = ZoneInfo("Asia/Shanghai")
VIEW_LIMIT = 1500
BUILDINGS_MIN_ZOOM = 16
GRIDS_LISTED = 200  # the diff page's table of changed grids; the count above it is of all


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
    levels = known_level(connection, level)
    index = levels.index(level)
    return levels[index + 1] if index + 1 < len(levels) else None


def _start_bounds(
    connection: ConnectionDep, factory: MapFactory, generation: int, level: str, focus: str | None
) -> list[list[float]] | None:
    """Where the editor opens: the `focus` grid, else the first grid of the level above (a
    community when editing grids). The page then loads only the grids in view, never a district."""
    levels = known_level(connection, level)
    above = levels[max(levels.index(level) - 1, 0)]
    rows = select_grids(connection, generation, code=focus, geometry="wkb") if focus else []
    if not rows:
        rows = select_grids(connection, generation, level=above, page=Page(1), geometry="wkb")
    if not rows:
        return None
    return factory.bounds(np.asarray([shapely.from_wkb(bytes(r.wkb)) for r in rows]))


def _can_edit(principal: Principal | None) -> bool:
    return principal is not None and principal.can(Permission.write_grids)


def _when(value: datetime) -> str:
    return value.astimezone(CHINA).strftime("%Y-%m-%d %H:%M")


@router.get(
    "/map/editor",
    response_class=HTMLResponse,
    responses={200: HTML},
    summary="草稿列表: open drafts, start a new one or an auto-suggested partition",
)
def editor_home(request: Request, connection: ConnectionDep, principal: ReaderDep) -> HTMLResponse:
    caller = Caller(principal)
    drafts = [
        {
            **d.as_json(),
            "created_by": public_actor(d.created_by, caller),
            "created": _when(d.created_at),
            "updated": _when(d.updated_at),
            "source_label": SOURCE_LABELS.get(d.source, d.source),
        }
        for d in find_drafts(connection, "open")
    ]
    try:
        active: int | None = generation_at(connection)
    except LookupError:
        active = None
    return page(
        request,
        "drafts.html",
        title="网格草稿 · wangge",
        drafts=drafts,
        active=active,
        can_edit=_can_edit(principal),
        page_data={"drafts": [{"id": d["id"], "version": d["version"]} for d in drafts]},
    )


@router.get(
    "/map/drafts/{draft_id}/edit",
    response_class=HTMLResponse,
    responses={200: HTML},
    summary="草稿编辑: every edit of the drafts API as a tap (drag, split, merge, create, delete, "
    "attributes, parent, buildings, undo, publish); checks and statistics refresh",
)
def editor_page(
    draft_id: int,
    request: Request,
    connection: ConnectionDep,
    principal: ReaderDep,
    level: str = "grid",
    focus: Annotated[str | None, Query(max_length=64, description="Open at this grid")] = None,
) -> HTMLResponse:
    draft = draft_by_id(connection, draft_id)
    child_level = _child_level(connection, level)
    levels = grid_levels(connection)
    names = [lv.name for lv in levels]
    parent_level = names[names.index(level) - 1] if names.index(level) > 0 else None
    factory = _factory(request)
    fmap = factory.new_map()
    GeomanAssets().add_to(fmap)
    rendered = render_map(fmap)
    title = f"编辑草稿：{draft.name}"
    return page(
        request,
        "editor.html",
        map=rendered,
        title=title,
        heading=title,
        draft=draft,
        shades=HOUSEHOLD_SHADES,
        can_edit=_can_edit(principal),
        level_label=next(lv.label_zh for lv in levels if lv.name == level),
        page_data={
            "map": rendered.name,
            "draft": draft_id,
            "version": draft.version,
            "open": draft.status == "open",
            "canEdit": _can_edit(principal),
            "generation": draft.generation_id,
            "level": level,
            "childLevel": child_level,
            "parentLevel": parent_level,
            "levels": [{"name": lv.name, "label": lv.label_zh} for lv in levels],
            "kinds": [
                {"name": kind, "label": KIND_LABELS.get(kind, kind)}
                for kind in grid_kinds(connection)
            ],
            "bounds": _start_bounds(connection, factory, draft.generation_id, level, focus),
            "focus": focus,
            "outCrs": factory.api_crs,
            # Grids in view per request; more means "zoom in" rather than a district at once.
            "viewLimit": VIEW_LIMIT,
            "buildingsMinZoom": BUILDINGS_MIN_ZOOM,
            "findingLabels": KIND_LABELS_CHECK,
            "warningKinds": list(WARNING_KINDS),
        },
    )


@router.get(
    "/map/drafts/{draft_id}/diff",
    response_class=HTMLResponse,
    responses={200: HTML},
    summary="草稿差异: per level, who gains and who loses which households, cameras, open events "
    "and staff (names as the caller may see them); changed grids before and after on the map",
)
def diff_page(
    draft_id: int, request: Request, connection: ConnectionDep, principal: ReaderDep
) -> HTMLResponse:
    diff, outlines = diff_with_outlines(connection, draft_id, Caller(principal))
    draft = draft_by_id(connection, draft_id)
    factory = _factory(request)
    fmap = factory.new_map()
    changes = {g["code"]: g for g in diff["grids"]}
    colours = {"added": "#38a169", "removed": "#e53e3e", "changed": "#3182ce"}
    layers = []
    changed_shapes = []
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
        layer = folium.GeoJson(
            factory.feature_collection(geometries, properties),
            name=name,
            style_function=lambda f, d=dash, s=side: {
                "color": "#4a5568" if s == "before" else f["properties"]["colour"],
                "weight": 2,
                "dashArray": d,
                "fillOpacity": 0 if s == "before" else 0.25,
                "fillColor": f["properties"]["colour"],
            },
        ).add_to(fmap)
        layers.append({"layer": layer.get_name(), "tooltip": {"fields": ["label"]}})
        changed_shapes.append(geometries)
    # Where the map opens: every changed grid, before and after. diff.js fits it again after
    # layout so that it lies in the part of the map the panel leaves visible (a phone's lower
    # half is the panel).
    fit = factory.bounds(np.concatenate(changed_shapes)) if changed_shapes else None
    if fit:
        fmap.fit_bounds(fit)
    # One layer per level that has moves: what changes grid there (buildings brown, cameras
    # green, open events red), each labelled with where it goes.
    kinds = {"buildings": "#975a16", "monitoring_points": "#2f855a", "open_events": "#c53030"}
    for level in diff["levels"]:
        features = []
        for key, colour in kinds.items():
            for item in level[key]:
                point = transform(
                    shapely.Point(item["lon"], item["lat"]), WGS84, factory.overlay_crs
                )
                what = item.get("code") or f"事件 #{item.get('id')}"
                label = f"{what}：{item['from_grid'] or '网格外'} → {item['to_grid'] or '网格外'}"
                features.append(
                    {
                        "type": "Feature",
                        "geometry": mapping(point),
                        "properties": {"label": label, "colour": colour},
                    }
                )
        if not features:
            continue
        layer = folium.GeoJson(
            {"type": "FeatureCollection", "features": features},
            # Leaflet's layer control puts layer names in as HTML: the level's label (set by
            # an admin through the levels API) is escaped so it shows as text.
            name=str(escape(f"换{level['label_zh']}的楼栋、监控点、事件（{len(features)}）")),
            marker=folium.CircleMarker(radius=5, fill=True, fill_opacity=0.9),
            style_function=lambda f: {
                "color": f["properties"]["colour"],
                "fillColor": f["properties"]["colour"],
            },
        ).add_to(fmap)
        layers.append({"layer": layer.get_name(), "tooltip": {"fields": ["label"]}})
    folium.LayerControl(collapsed=True).add_to(fmap)
    rendered = render_map(fmap)
    title = f"草稿差异：{draft.name}"
    return page(
        request,
        "diff.html",
        map=rendered,
        title=title,
        heading=title,
        draft_id=draft_id,
        diff=diff,
        levels=diff["levels"],
        grids=diff["grids"][:GRIDS_LISTED],
        change_labels=CHANGE_LABELS,
        page_data={"map": rendered.name, "layers": layers, "fit": fit},
    )
