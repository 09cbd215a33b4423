"""What a coverage check reads (grids, roles, buildings, cameras) and the stored reports."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.expression import bindparam


def required_roles(connection: Connection) -> list[tuple[str, str]]:
    """(level, role label) for every staff role a grid of that level must have."""
    rows = connection.execute(
        text(
            "SELECT required_at_level, label_zh FROM staff_role_kind WHERE required_at_level IS NOT NULL"
        )
    )
    return [(row.required_at_level, row.label_zh) for row in rows]


def roles_present(connection: Connection) -> list[tuple[str, str]]:
    """(grid code, role label) for every assignment of an active staff member."""
    rows = connection.execute(
        text(
            "SELECT a.grid_code, k.label_zh FROM staff_assignment a JOIN staff s ON s.id = a.staff_id "
            "JOIN staff_role_kind k ON k.name = a.role WHERE s.active"
        )
    )
    return [(row.grid_code, row.label_zh) for row in rows]


def building_footprints(connection: Connection) -> Sequence[Row[Any]]:
    """code and wkb of every building, by code."""
    return connection.execute(
        text("SELECT code, ST_AsBinary(geom) AS wkb FROM building ORDER BY code")
    ).all()


def online_cameras(connection: Connection) -> Sequence[Row[Any]]:
    """Online cameras with a known heading, field of view and range, by code."""
    return connection.execute(
        text(
            "SELECT code, heading_deg, fov_deg, range_m, ST_AsBinary(geom) AS wkb FROM monitoring_point "
            "WHERE kind = 'camera' AND status = 'online' AND heading_deg IS NOT NULL AND fov_deg IS NOT NULL "
            "AND range_m IS NOT NULL ORDER BY code"
        )
    ).all()


def insert_report(connection: Connection, report: dict[str, Any], actor: str) -> int:
    """Store a check report; returns its id."""
    return int(
        connection.execute(
            text(
                "INSERT INTO coverage_check (generation_id, level, parameters, summary, report, created_by) "
                "VALUES (:g, :level, :parameters, :summary, :report, :actor) RETURNING id"
            ).bindparams(
                bindparam("parameters", type_=JSONB),
                bindparam("summary", type_=JSONB),
                bindparam("report", type_=JSONB),
            ),
            {
                "g": report["generation"],
                "level": report["level"],
                "parameters": report["parameters"],
                "summary": report["summary"],
                "report": report,
                "actor": actor,
            },
        ).scalar_one()
    )


def stored_report(connection: Connection, check_id: int) -> Row[Any] | None:
    """id, report, created_at and created_by of a stored check."""
    return connection.execute(
        text("SELECT id, report, created_at, created_by FROM coverage_check WHERE id = :id"),
        {"id": check_id},
    ).first()
