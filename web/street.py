"""The street overview's map, built once per generation and basemap.

A street's levels are written into the page as GeoJSON while they are small; when one is too
large to inline (settings.maps.inline_max_features / inline_max_bytes — a district's tens of
thousands of micro-grids), every level is drawn from the vector tiles (/tiles/grids-{level}/…)
by Leaflet.VectorGrid instead, and the page carries only the layer specifications.

Simplifying every level of the hierarchy and rendering ~1,300 outlines takes most of a street
page (~0.15 s on the demo street), yet nothing in it changes until a publish. The open-event
counts do change per request, so they stay out: the page sends them as JSON and
web/assets/map.js shades the grids and fills the tooltips from them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import folium
import numpy as np
import shapely
from sqlalchemy import Connection

from api.db import grids as grid_queries
from api.tiles.matrix import LEVEL_MIN_ZOOM, MAX_ZOOM, OTHER_LEVEL_MIN_ZOOM
from web.maps import CHOROPLETH, VECTOR_GRID_JS, MapFactory, RenderedMap, render_map, simplified

LEVELS = (("community", "社区", 3), ("grid", "网格", 2), ("micro_grid", "微网格", 0.6))
SHADED_LEVEL = "grid"
# What one vertex costs inline ("[120.7312345,31.3012345],") and a feature's properties.
INLINE_BYTES_PER_VERTEX = 26
INLINE_BYTES_PER_FEATURE = 120
# Open events per grid: 0, 1, 2, 3–4, 5 and more.
BREAKS = (0, 1, 2, 4)
SHADES = (
    (CHOROPLETH[0], "0"),
    (CHOROPLETH[1], "1"),
    (CHOROPLETH[2], "2"),
    (CHOROPLETH[3], "3–4"),
    (CHOROPLETH[4], "5 及以上"),
)


@dataclass(frozen=True)
class StreetMap:
    title: str
    map: RenderedMap
    layers: list[dict[str, Any]]
    children: dict[str, list[str]]

    def open_counts(self, counts: dict[str, int]) -> dict[str, int]:
        """Open events in each grid and everything below it (grids with none left out)."""
        totals: dict[str, int] = {}

        def total(code: str) -> int:
            if code not in totals:
                totals[code] = counts.get(code, 0) + sum(
                    total(child) for child in self.children.get(code, [])
                )
            return totals[code]

        for code in [*self.children, *counts]:
            total(code)
        return {code: n for code, n in totals.items() if n}


def too_large_to_inline(factory: MapFactory, geometries: np.ndarray) -> bool:
    """Whether a layer would make the page too heavy to carry as GeoJSON (settings.maps)."""
    settings = factory.settings
    estimate = (
        int(shapely.get_num_coordinates(geometries).sum()) * INLINE_BYTES_PER_VERTEX
        + len(geometries) * INLINE_BYTES_PER_FEATURE
    )
    return len(geometries) > settings.inline_max_features or estimate > settings.inline_max_bytes


def _style(weight: float, shaded: bool) -> dict[str, Any]:
    return {
        "color": "#2d3748",
        "weight": weight,
        "fillColor": CHOROPLETH[0] if shaded else "#ffffff",
        "fillOpacity": 0.65 if shaded else 0.0,
    }


def _tiled_layer(
    factory: MapFactory, level: str, name: str, weight: float, shaded: bool
) -> dict[str, Any]:
    """A level drawn from /tiles by web/assets/map.js (Leaflet.VectorGrid)."""
    datum = "?crs=gcj02" if factory.overlay_crs == "GCJ02" else ""
    # VectorGrid fills nothing unless told (L.Path's default); a fill, transparent where the
    # level is not shaded, makes the whole grid catch the pointer and not only its outline.
    style = {**_style(weight, shaded), "fill": True}
    return {
        "tiles": f"/tiles/grids-{level}/{{z}}/{{x}}/{{y}}.mvt{datum}",
        "vectorLayer": f"grids-{level}",
        "name": name,
        "show": level != "micro_grid",
        "minZoom": LEVEL_MIN_ZOOM.get(level, OTHER_LEVEL_MIN_ZOOM),
        "maxNativeZoom": MAX_ZOOM,
        "style": style,
    }


def build_street_map(connection: Connection, factory: MapFactory, generation: int) -> StreetMap:
    rows, geometries = grid_queries.grid_shapes(connection, generation)
    children: dict[str, list[str]] = {}
    for row in rows:
        if row["parent_code"]:
            children.setdefault(row["parent_code"], []).append(row["code"])
    fmap = factory.new_map()
    control = folium.LayerControl(collapsed=False)
    members_of = {
        level: [i for i, r in enumerate(rows) if r["level"] == level] for level, _, _ in LEVELS
    }
    # One layer too large to inline puts every level on tiles: tiles are drawn in panes above
    # the inline layers and would take their pointer events (and their stacking order) away.
    tiled = any(too_large_to_inline(factory, geometries[m]) for m in members_of.values() if m)
    if tiled:
        fmap.default_js = [*fmap.default_js, *VECTOR_GRID_JS]
    layers = []
    for level, label, weight in LEVELS:
        members = members_of[level]
        if not members:
            continue
        shaded = level == SHADED_LEVEL
        common = {
            "tooltip": {"fields": ["name", "code", "open"], "labels": ["名称", "编码", "未结事件"]},
            # A click (a tap on a phone) opens the grid's own page.
            "click": "/map/grids/",
            "shade": shaded,
        }
        if tiled:
            name = f"{label}（{len(members)}）"
            spec = _tiled_layer(factory, level, name, weight, shaded)
            layers.append({**spec, **common})
            continue
        layer = folium.GeoJson(
            factory.feature_collection(
                simplified(geometries[members]),
                [{"name": rows[i]["name"], "code": rows[i]["code"]} for i in members],
            ),
            name=f"{label}（{len(members)}）",
            show=level != "micro_grid",
            style_function=lambda _, w=weight, s=shaded: _style(w, s),
            highlight_function=lambda _: {"weight": 3, "color": "#e53e3e"},
        ).add_to(fmap)
        layers.append({"layer": layer.get_name(), **common})
    control.add_to(fmap)
    street = [i for i, r in enumerate(rows) if r["level"] == "street"] or list(range(len(rows)))
    if street:
        fmap.fit_bounds(factory.bounds(geometries[street]))
    title = _title([r["name"] for r in rows if not r["parent_code"]]) if rows else "wangge"
    return StreetMap(title=title, map=render_map(fmap), layers=layers, children=children)


def _title(top_names: list[str]) -> str:
    """One street by its name; a district (several top-level grids) by how many it holds."""
    if len(top_names) <= 1:
        return top_names[0] if top_names else "wangge"
    return f"全区总览（{len(top_names)} 个街道）"


class StreetMaps:
    """A few street maps, keyed by generation and map settings (a publish makes a new key)."""

    def __init__(self, size: int = 4) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._maps: OrderedDict[tuple[int, str], StreetMap] = OrderedDict()

    def get(self, connection: Connection, factory: MapFactory, generation: int) -> StreetMap:
        key = (generation, factory.settings.model_dump_json())
        with self._lock:
            if key in self._maps:
                self._maps.move_to_end(key)
                return self._maps[key]
        # Built outside the lock: a second request for a new key may build it too, harmlessly.
        built = build_street_map(connection, factory, generation)
        with self._lock:
            self._maps[key] = built
            while len(self._maps) > self._size:
                self._maps.popitem(last=False)
        return built
