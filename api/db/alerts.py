"""The monitoring point an alert comes from (cameras and sensors are not versioned)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, text


def monitoring_point(connection: Connection, code: str) -> dict[str, Any] | None:
    """A point's kind, status and WGS84 position, or None for an unknown code."""
    row = (
        connection.execute(
            text(
                "SELECT code, name, kind, status, ST_X(geom) AS lon, ST_Y(geom) AS lat "
                "FROM monitoring_point WHERE code = :code"
            ),
            {"code": code},
        )
        .mappings()
        .first()
    )
    return dict(row) if row else None
