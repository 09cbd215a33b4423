"""Read queries for buildings and monitoring points (not versioned: they are physical things)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, text

from api.db.filters import BBox, Page, in_generation, where
from api.db.geojson import collection, feature

_GRID_FILTER = (
    "EXISTS (SELECT 1 FROM grid g WHERE g.code = :grid_code AND "
    + in_generation("g", "generation")
    + " AND ST_Intersects(g.geom, {column}))"
)

LAYERS: dict[str, dict[str, Any]] = {
    "buildings": {
        "table": "building",
        "columns": ("code", "name", "address", "floors", "households", "use", "attributes"),
    },
    "points": {
        "table": "monitoring_point",
        "columns": (
            "code",
            "name",
            "kind",
            "heading_deg",
            "fov_deg",
            "range_m",
            "status",
            "attributes",
        ),
    },
}


def find_features(
    connection: Connection,
    layer: str,
    *,
    bbox: BBox | None = None,
    grid_code: str | None = None,
    generation: int | None = None,
    equals: dict[str, str] | None = None,
    page: Page,
) -> dict[str, Any]:
    """Features of `layer` ('buildings' or 'points') as a GeoJSON FeatureCollection page."""
    spec = LAYERS[layer]
    columns = ", ".join(f"t.{c}" for c in spec["columns"])
    clauses: list[str] = []
    params: dict[str, Any] = {"limit": page.limit + 1, "offset": page.offset}
    if bbox:
        clause, values = bbox.clause("t.geom")
        clauses.append(clause)
        params.update(values)
    if grid_code:
        clauses.append(_GRID_FILTER.format(column="t.geom"))
        params.update({"grid_code": grid_code, "generation": generation})
    for column, value in (equals or {}).items():
        if column not in spec["columns"]:  # whitelist: identifiers are never user text
            raise ValueError(f"unknown column {column}")
        clauses.append(f"t.{column} = :eq_{column}")
        params[f"eq_{column}"] = value
    rows = (
        connection.execute(
            text(
                f"SELECT {columns}, ST_AsGeoJSON(t.geom) AS geometry FROM {spec['table']} t"
                f"{where(clauses)} ORDER BY t.code LIMIT :limit OFFSET :offset"
            ),
            params,
        )
        .mappings()
        .all()
    )
    features = [
        feature(json.loads(r["geometry"]), {c: r[c] for c in spec["columns"]}, r["code"])
        for r in rows[: page.limit]
    ]
    return collection(features, page, len(rows) > page.limit)
