"""Queries behind the map pages."""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely
from sqlalchemy import Connection, text

_IN_GENERATION = "generation_low <= :g AND generation_high >= :g"


def grid_layer(
    connection: Connection,
    generation: int,
    *,
    level: str | None = None,
    parent: str | None = None,
    code: str | None = None,
) -> tuple[list[dict[str, Any]], np.ndarray]:
    rows = (
        connection.execute(
            text(
                f"SELECT code, name, level, parent_code, households, ST_AsBinary(geom) AS wkb FROM grid WHERE {_IN_GENERATION} "
                "AND (CAST(:level AS text) IS NULL OR level = :level) AND (CAST(:parent AS text) IS NULL OR parent_code = :parent) "
                "AND (CAST(:code AS text) IS NULL OR code = :code) ORDER BY code"
            ),
            {"g": generation, "level": level, "parent": parent, "code": code},
        )
        .mappings()
        .all()
    )
    geometries = np.asarray(
        shapely.from_wkb([bytes(r["wkb"]) for r in rows]) if rows else [], dtype=object
    )
    return [{k: v for k, v in r.items() if k != "wkb"} for r in rows], geometries


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
                f"JOIN grid g ON g.code = :code AND g.{_IN_GENERATION.replace(' AND ', ' AND g.')} "
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
                f"FROM monitoring_point m JOIN grid g ON g.code = :code AND g.{_IN_GENERATION.replace(' AND ', ' AND g.')} "
                "WHERE ST_DWithin(g.geom::geography, m.geom::geography, :margin) ORDER BY m.code"
            ),
            {"code": code, "g": generation, "margin": margin_m},
        )
        .mappings()
        .all()
    )
    return [dict(r) for r in rows]
