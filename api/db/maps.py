"""Queries behind the map pages (the grids themselves come from api.db.grids.grid_shapes)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, text

from api.db.filters import in_generation

_GRID_IN_GENERATION = in_generation("g")


def open_event_counts(connection: Connection) -> dict[str, int]:
    """Open events per finest grid code."""
    rows = connection.execute(
        text(
            "SELECT grid_code, count(*) FROM event WHERE status NOT IN ('closed', 'cancelled') "
            "AND grid_code IS NOT NULL GROUP BY grid_code"
        )
    ).all()
    return {code: int(count) for code, count in rows}


def open_events_within(connection: Connection, code: str, generation: int) -> int:
    """How many open events lie in a grid."""
    return int(
        connection.execute(
            text(
                "SELECT count(*) FROM event e "
                f"JOIN grid g ON g.code = :code AND {_GRID_IN_GENERATION} "
                "WHERE e.status NOT IN ('closed', 'cancelled') AND e.geom && g.geom AND ST_Covers(g.geom, e.geom)"
            ),
            {"code": code, "g": generation},
        ).scalar_one()
    )


def cameras_within(
    connection: Connection, code: str, generation: int, margin_m: float = 150.0
) -> list[dict[str, Any]]:
    """Monitoring points in or near the grid (a camera just outside can still look in)."""
    rows = (
        connection.execute(
            text(
                "SELECT m.code, m.name, m.status, m.heading_deg, m.fov_deg, m.range_m, ST_X(m.geom) AS lon, ST_Y(m.geom) AS lat "
                f"FROM monitoring_point m JOIN grid g ON g.code = :code AND {_GRID_IN_GENERATION} "
                "WHERE ST_DWithin(g.geom::geography, m.geom::geography, :margin) ORDER BY m.code"
            ),
            {"code": code, "g": generation, "margin": margin_m},
        )
        .mappings()
        .all()
    )
    return [dict(r) for r in rows]
