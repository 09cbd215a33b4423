"""Rows behind placing an event by hand (api/event_location.py): the event locked with its point,
and its new point, grid and generation written with the version bumped."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, text


def lock_event(connection: Connection, event_id: int) -> dict[str, Any] | None:
    """The event's state, version, placement and point, locked until the transaction ends."""
    row = (
        connection.execute(
            text(
                "SELECT id, source, external_id, status, version, grid_code, generation_id, "
                "unit_code, due_at, merged_into, ST_X(geom) AS lon, ST_Y(geom) AS lat "
                "FROM event WHERE id = :id FOR UPDATE"
            ),
            {"id": event_id},
        )
        .mappings()
        .first()
    )
    return dict(row) if row else None


def set_location(
    connection: Connection,
    event_id: int,
    *,
    lon: float,
    lat: float,
    grid_code: str,
    generation_id: int,
) -> int:
    """Move the event to this WGS84 point and grid (of this generation); returns its new version."""
    return int(
        connection.execute(
            text(
                "UPDATE event SET geom = ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), "
                "grid_code = :grid_code, generation_id = :generation_id, version = version + 1, "
                "updated_at = now() WHERE id = :id RETURNING version"
            ),
            {
                "id": event_id,
                "lon": lon,
                "lat": lat,
                "grid_code": grid_code,
                "generation_id": generation_id,
            },
        ).scalar_one()
    )
