"""Event rows: idempotent insert on (source, external_id), history, reads."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

from api.db.filters import Page, in_generation, where
from api.db.geojson import collection, feature

_COLUMNS = (
    "id, source, external_id, category_code, description, address, raw_x, raw_y, raw_crs, "
    "ST_X(geom) AS lon, ST_Y(geom) AS lat, grid_code, generation_id, status, reporter_name, "
    "reporter_phone, payload_sha256, reported_at, received_at, due_at, closed_at"
)


def due_hours(connection: Connection) -> dict[str, int | None]:
    return dict(connection.execute(text("SELECT code, due_hours FROM event_category")).all())


def insert_event(connection: Connection, values: dict[str, Any], actor: str) -> int | None:
    """Insert unless (source, external_id) exists; returns the new id, or None when it existed."""
    new_id = connection.execute(
        text(
            "INSERT INTO event (source, external_id, category_code, description, address, raw_x, raw_y, "
            "raw_crs, geom, grid_code, generation_id, status, reporter_name, reporter_phone, payload_sha256, "
            "reported_at, due_at) VALUES (:source, :external_id, :category_code, :description, :address, "
            ":raw_x, :raw_y, :raw_crs, CASE WHEN CAST(:lon AS float8) IS NULL THEN NULL "
            "ELSE ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) END, :grid_code, :generation_id, 'received', "
            ":reporter_name, :reporter_phone, :payload_sha256, :reported_at, :due_at) "
            "ON CONFLICT (source, external_id) DO NOTHING RETURNING id"
        ),
        values,
    ).scalar()
    if new_id is not None:
        connection.execute(
            text(
                "INSERT INTO event_history (event_id, status, actor, note) VALUES (:id, 'received', :actor, :note)"
            ),
            {
                "id": new_id,
                "actor": actor,
                "note": "已受理" if values["grid_code"] else "已受理，待人工分派（未能定位到网格）",
            },
        )
    return int(new_id) if new_id is not None else None


def find_event(
    connection: Connection,
    *,
    event_id: int | None = None,
    source: str | None = None,
    external_id: str | None = None,
) -> dict[str, Any] | None:
    if event_id is not None:
        row = connection.execute(
            text(f"SELECT {_COLUMNS} FROM event WHERE id = :id"), {"id": event_id}
        )
    else:
        row = connection.execute(
            text(f"SELECT {_COLUMNS} FROM event WHERE source = :s AND external_id = :e"),
            {"s": source, "e": external_id},
        )
    found = row.mappings().first()
    return dict(found) if found else None


def history(connection: Connection, event_id: int) -> list[dict[str, Any]]:
    rows = connection.execute(
        text(
            "SELECT at, status, actor, note FROM event_history WHERE event_id = :id ORDER BY at, id"
        ),
        {"id": event_id},
    ).mappings()
    return [dict(r) for r in rows]


def reassign_open_events(connection: Connection, generation: int) -> int:
    """Open events follow their location into the given generation (finest grid, smallest code)."""
    return connection.execute(
        text(
            "UPDATE event e SET grid_code = o.code, generation_id = :g, updated_at = now() FROM ("
            " SELECT DISTINCT ON (e2.id) e2.id, g.code FROM event e2 JOIN grid g ON g.geom && e2.geom "
            " AND ST_Covers(g.geom, e2.geom) JOIN grid_level l ON l.name = g.level "
            f" WHERE e2.status NOT IN ('closed', 'cancelled') AND {in_generation('g')} "
            " ORDER BY e2.id, l.rank DESC, g.code) o "
            "WHERE e.id = o.id AND (e.grid_code IS DISTINCT FROM o.code OR e.generation_id IS DISTINCT FROM :g)"
        ),
        {"g": generation},
    ).rowcount


def unplace_stranded_events(connection: Connection, generation: int, actor: str) -> int:
    """Open events still on a grid of an earlier generation lie in no grid of this one: they go
    back to manual dispatch (grid cleared, a history line says why) instead of pointing at a grid
    that no longer exists."""
    return connection.execute(
        text(
            "WITH stranded AS (UPDATE event SET grid_code = NULL, generation_id = NULL, updated_at = now() "
            "WHERE status NOT IN ('closed', 'cancelled') AND grid_code IS NOT NULL "
            "AND generation_id IS DISTINCT FROM :g RETURNING id, status) "
            "INSERT INTO event_history (event_id, status, actor, note) "
            "SELECT id, status, :actor, :note FROM stranded"
        ),
        {
            "g": generation,
            "actor": actor,
            "note": f"第 {generation} 版网格生效后不在任何网格内，待人工分派",
        },
    ).rowcount


def as_timestamp(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def events_geojson(
    connection: Connection,
    *,
    bbox: Any = None,
    open_only: bool = True,
    limit: int = 1000,
    offset: int = 0,
) -> dict[str, Any]:
    """Events as GeoJSON for maps. Reporters stay in the event record; the description is here
    and the route leaves it out for callers not entitled to it (api/privacy.py)."""
    clauses = ["e.geom IS NOT NULL"]
    params: dict[str, Any] = {"limit": limit + 1, "offset": offset}
    if open_only:
        clauses.append("e.status NOT IN ('closed', 'cancelled')")
    if bbox is not None:
        clause, values = bbox.clause("e.geom")
        clauses.append(clause)
        params.update(values)
    rows = (
        connection.execute(
            text(
                "SELECT e.id, e.source, e.category_code, e.description, e.status, e.grid_code, e.reported_at, e.due_at, "
                "(e.due_at IS NOT NULL AND e.due_at < now() AND e.status NOT IN ('closed', 'cancelled')) AS overdue, "
                f"ST_AsGeoJSON(e.geom) AS geometry FROM event e{where(clauses)} ORDER BY e.id LIMIT :limit OFFSET :offset"
            ),
            params,
        )
        .mappings()
        .all()
    )
    features = [
        feature(
            json.loads(r["geometry"]),
            {
                "id": r["id"],
                "source": r["source"],
                "category_code": r["category_code"],
                "description": r["description"],
                "status": r["status"],
                "grid_code": r["grid_code"],
                "overdue": r["overdue"],
                "reported_at": as_timestamp(r["reported_at"]),
                "due_at": as_timestamp(r["due_at"]),
            },
            str(r["id"]),
        )
        for r in rows[:limit]
    ]
    return collection(features, Page(limit, offset), len(rows) > limit)
