"""Grid queries: by generation, level, parent, code and bounding box; one grid; its ancestors; staff."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import shapely
from sqlalchemy import Connection, Row, text

from api.db.catalogue import grid_levels
from api.db.filters import BBox, Page, in_generation, where
from api.db.geojson import collection, feature

_IN_GENERATION = in_generation("g", "generation")
_COLUMNS = (
    "g.code, g.name, g.level, l.label_zh AS level_label, g.kind, g.parent_code, g.households, "
    "g.population, g.attributes"
)
_GEOMETRY = {"geojson": "ST_AsGeoJSON(g.geom) AS geometry", "wkb": "ST_AsBinary(g.geom) AS wkb"}
_MAP_KEYS = ("code", "name", "level", "parent_code", "households")  # no free attributes on maps


def _properties(row: Any, generation: int) -> dict[str, Any]:
    return {
        "code": row.code,
        "name": row.name,
        "level": row.level,
        "level_label": row.level_label,
        "kind": row.kind,
        "parent_code": row.parent_code,
        "households": row.households,
        "population": row.population,
        "attributes": row.attributes,
        "generation": generation,
    }


def select_grids(
    connection: Connection,
    generation: int,
    *,
    level: str | None = None,
    parent_code: str | None = None,
    code: str | None = None,
    bbox: BBox | None = None,
    page: Page | None = None,
    geometry: Literal["geojson", "wkb"] = "geojson",
) -> Sequence[Row[Any]]:
    """The one grid query: a generation's grids by level, parent, code and box, coarsest level
    first, then by code; `geometry` says whether `geometry` (GeoJSON) or `wkb` comes back."""
    clauses = [_IN_GENERATION]
    params: dict[str, Any] = {"generation": generation}
    for column, value in (("level", level), ("parent_code", parent_code), ("code", code)):
        if value:
            clauses.append(f"g.{column} = :{column}")
            params[column] = value
    if bbox:
        clause, values = bbox.clause("g.geom")
        clauses.append(clause)
        params.update(values)
    paging = ""
    if page is not None:
        paging = " LIMIT :limit OFFSET :offset"
        params.update({"limit": page.limit, "offset": page.offset})
    return connection.execute(
        text(
            f"SELECT {_COLUMNS}, {_GEOMETRY[geometry]} FROM grid g "
            f"JOIN grid_level l ON l.name = g.level{where(clauses)} "
            f"ORDER BY l.rank, g.code{paging}"
        ),
        params,
    ).all()


def find_grids(
    connection: Connection,
    generation: int,
    *,
    level: str | None = None,
    parent_code: str | None = None,
    bbox: BBox | None = None,
    page: Page,
) -> dict[str, Any]:
    """One page of grids as a GeoJSON FeatureCollection."""
    rows = select_grids(
        connection,
        generation,
        level=level,
        parent_code=parent_code,
        bbox=bbox,
        page=Page(page.limit + 1, page.offset),
    )
    features = [
        feature(json.loads(r.geometry), _properties(r, generation), r.code)
        for r in rows[: page.limit]
    ]
    return collection(features, page, len(rows) > page.limit, generation=generation)


def grid_shapes(
    connection: Connection,
    generation: int,
    *,
    level: str | None = None,
    parent_code: str | None = None,
    code: str | None = None,
) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Grids for a map: code, name, level, parent code and households, and their shapes."""
    rows = select_grids(
        connection, generation, level=level, parent_code=parent_code, code=code, geometry="wkb"
    )
    geometries = np.asarray(
        shapely.from_wkb([bytes(r.wkb) for r in rows]) if rows else [], dtype=object
    )
    return [{key: getattr(r, key) for key in _MAP_KEYS} for r in rows], geometries


def get_grid(connection: Connection, code: str, generation: int) -> dict[str, Any] | None:
    row = connection.execute(
        text(
            f"SELECT {_COLUMNS}, ST_AsGeoJSON(g.geom) AS geometry, "
            "ST_Area(g.geom::geography) AS area_m2 FROM grid g "
            f"JOIN grid_level l ON l.name = g.level WHERE g.code = :code AND {_IN_GENERATION}"
        ),
        {"code": code, "generation": generation},
    ).first()
    if row is None:
        return None
    properties = _properties(row, generation)
    properties["area_m2"] = round(row.area_m2, 1)
    properties["path"] = grid_path(connection, code, generation)
    return feature(json.loads(row.geometry), properties, row.code)


def grid_path(connection: Connection, code: str, generation: int) -> list[dict[str, str]]:
    """Ancestors and the grid itself, from the top level down: [{level, code, name}, …]."""
    rows = connection.execute(
        text(
            f"""
            WITH RECURSIVE up AS (
                SELECT g.code, g.name, g.level, g.parent_code, 0 AS depth FROM grid g
                WHERE g.code = :code AND {_IN_GENERATION}
                UNION ALL
                SELECT g.code, g.name, g.level, g.parent_code, up.depth + 1 FROM grid g
                JOIN up ON g.code = up.parent_code WHERE {_IN_GENERATION} AND up.depth < 16
            )
            SELECT level, code, name FROM up ORDER BY depth DESC
            """
        ),
        {"code": code, "generation": generation},
    ).all()
    return [{"level": r.level, "code": r.code, "name": r.name} for r in rows]


def staff_for_grid(connection: Connection, code: str) -> list[dict[str, Any]]:
    rows = connection.execute(
        text(
            "SELECT s.id, s.name, s.phone, s.department, a.role, k.label_zh AS role_label "
            "FROM staff_assignment a JOIN staff s ON s.id = a.staff_id "
            "JOIN staff_role_kind k ON k.name = a.role "
            "WHERE a.grid_code = :code AND s.active ORDER BY k.name, s.id"
        ),
        {"code": code},
    ).mappings()
    return [dict(r) for r in rows]


def levels(connection: Connection) -> list[dict[str, Any]]:
    """The level catalogue as JSON-ready rows, coarsest first."""
    return [level.as_dict() for level in grid_levels(connection)]


def owners_by_postgis(
    connection: Connection, lon: Any, lat: Any, generation: int
) -> list[str | None]:
    """The authority's answer for many points: ST_Covers with the lookup's tie-break.

    Finest level first, then the smallest code; None outside every grid. Runs inside the
    connection's transaction (a temporary table). Used to check the in-memory index.
    """
    from api.db.copy import copy_rows

    connection.execute(
        text("CREATE TEMP TABLE probe (id int, geom geometry(Point, 4326)) ON COMMIT DROP")
    )
    wkb = shapely.to_wkb(
        shapely.set_srid(shapely.points(lon, lat), 4326), hex=True, include_srid=True
    )
    copy_rows(connection, "probe", ("id", "geom"), zip(range(len(wkb)), wkb.tolist(), strict=True))
    connection.execute(text("CREATE INDEX ON probe USING gist (geom); ANALYZE probe"))
    rows = connection.execute(
        text(
            "SELECT DISTINCT ON (p.id) p.id, g.code FROM probe p JOIN grid g ON g.geom && p.geom "
            "AND ST_Covers(g.geom, p.geom) JOIN grid_level l ON l.name = g.level "
            f"WHERE {_IN_GENERATION} ORDER BY p.id, l.rank DESC, g.code"
        ),
        {"generation": generation},
    ).all()
    owners: list[str | None] = [None] * len(wkb)
    for point_id, code in rows:
        owners[point_id] = code
    return owners
