"""The street overview's map, built once per generation and basemap.

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
from sqlalchemy import Connection

from api.db import grids as grid_queries
from web.maps import CHOROPLETH, MapFactory, RenderedMap, render_map, simplified

LEVELS = (("community", "社区", 3), ("grid", "网格", 2), ("micro_grid", "微网格", 0.6))
SHADED_LEVEL = "grid"
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


def build_street_map(connection: Connection, factory: MapFactory, generation: int) -> StreetMap:
    rows, geometries = grid_queries.grid_shapes(connection, generation)
    children: dict[str, list[str]] = {}
    for row in rows:
        if row["parent_code"]:
            children.setdefault(row["parent_code"], []).append(row["code"])
    fmap = factory.new_map()
    layers = []
    for level, label, weight in LEVELS:
        members = [i for i, r in enumerate(rows) if r["level"] == level]
        if not members:
            continue
        shaded = level == SHADED_LEVEL
        layer = folium.GeoJson(
            factory.feature_collection(
                simplified(geometries[members]),
                [{"name": rows[i]["name"], "code": rows[i]["code"]} for i in members],
            ),
            name=f"{label}（{len(members)}）",
            show=level != "micro_grid",
            style_function=lambda _, w=weight, s=shaded: {
                "color": "#2d3748",
                "weight": w,
                "fillColor": CHOROPLETH[0] if s else "#ffffff",
                "fillOpacity": 0.65 if s else 0.0,
            },
            highlight_function=lambda _: {"weight": 3, "color": "#e53e3e"},
        ).add_to(fmap)
        layers.append(
            {
                "layer": layer.get_name(),
                "tooltip": {
                    "fields": ["name", "code", "open"],
                    "labels": ["名称", "编码", "未结事件"],
                },
                # A click (a tap on a phone) opens the grid's own page.
                "click": "/map/grids/",
                "shade": shaded,
            }
        )
    folium.LayerControl(collapsed=False).add_to(fmap)
    street = [i for i, r in enumerate(rows) if r["level"] == "street"] or list(range(len(rows)))
    if street:
        fmap.fit_bounds(factory.bounds(geometries[street]))
    title = rows[street[0]]["name"] if rows else "wangge"
    return StreetMap(title=title, map=render_map(fmap), layers=layers, children=children)


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
