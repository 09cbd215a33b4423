"""Export reads: every row of a layer with its geometry as WKB, in a stable order."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, RowMapping, text

from api.db.filters import in_generation

QUERIES = {
    "grids": (
        "SELECT g.code, g.name, g.level, g.kind, g.parent_code, g.households, g.population, "
        "g.attributes, ST_AsBinary(g.geom) AS wkb FROM grid g JOIN grid_level l ON l.name = g.level "
        f"WHERE {in_generation('g', 'generation')} "
        "AND (CAST(:level AS text) IS NULL OR g.level = :level) ORDER BY l.rank, g.code"
    ),
    "buildings": (
        "SELECT code, name, address, floors, households, use, attributes, ST_AsBinary(geom) AS wkb "
        "FROM building ORDER BY code"
    ),
    "points": (
        "SELECT code, name, kind, heading_deg, fov_deg, range_m, status, attributes, "
        "ST_AsBinary(geom) AS wkb FROM monitoring_point ORDER BY code"
    ),
    # The gazetteer's places have no free attributes; aliases as one cell joined by |.
    "roads": (
        "SELECT code, name, array_to_string(aliases, '|') AS aliases, kind, NULL AS attributes, "
        "ST_AsBinary(geom) AS wkb FROM road ORDER BY code"
    ),
    "compounds": (
        "SELECT code, name, array_to_string(aliases, '|') AS aliases, kind, NULL AS attributes, "
        "ST_AsBinary(geom) AS wkb FROM compound ORDER BY code"
    ),
    "pois": (
        "SELECT code, name, array_to_string(aliases, '|') AS aliases, category, "
        "NULL AS attributes, ST_AsBinary(geom) AS wkb FROM poi ORDER BY code"
    ),
    "house-numbers": (
        "SELECT code, road, number, compound_code, NULL AS attributes, ST_AsBinary(geom) AS wkb "
        "FROM house_number ORDER BY code"
    ),
}


def layer_rows(
    connection: Connection, kind: str, *, generation: int | None, level: str | None
) -> Sequence[RowMapping]:
    """Rows of `kind` (grids of `generation`, optionally one `level`; buildings; points; the
    gazetteer's roads, compounds, pois, house-numbers)."""
    return (
        connection.execute(text(QUERIES[kind]), {"generation": generation, "level": level})
        .mappings()
        .all()
    )
