"""Patrols (巡查) and their fixes: rows in, rows out. Every value is bound."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import shapely
from sqlalchemy import Connection, text

PATROL_COLUMNS = (
    "p.id, p.client_id, p.token_id, p.staff_id, s.name AS staff_name, p.grid_code, p.source, "
    "p.started_at, p.ended_at, p.points, p.dropped_points, p.length_m, p.created_at"
)
_FROM = "FROM patrol p LEFT JOIN staff s ON s.id = p.staff_id"


def insert_patrol(
    connection: Connection,
    *,
    client_id: str,
    token_id: int,
    staff_id: int | None,
    source: str,
    started_at: datetime,
    ended_at: datetime | None = None,
) -> tuple[dict[str, Any], bool]:
    """The patrol under (token, client_id): (row, True) if made now, (row, False) if it existed."""
    made = connection.execute(
        text(
            "INSERT INTO patrol (client_id, token_id, staff_id, source, started_at, ended_at) "
            "VALUES (:client_id, :token_id, :staff_id, :source, :started_at, :ended_at) "
            "ON CONFLICT (token_id, client_id) DO NOTHING RETURNING id"
        ),
        {
            "client_id": client_id,
            "token_id": token_id,
            "staff_id": staff_id,
            "source": source,
            "started_at": started_at,
            "ended_at": ended_at,
        },
    ).scalar()
    if made is not None:
        row = find_patrol(connection, int(made))
        assert row is not None
        return row, True
    existing = connection.execute(
        text(f"SELECT {PATROL_COLUMNS} {_FROM} WHERE p.token_id = :t AND p.client_id = :c"),
        {"t": token_id, "c": client_id},
    ).mappings()
    return dict(existing.one()), False


def find_patrol(
    connection: Connection, patrol_id: int, *, lock: bool = False
) -> dict[str, Any] | None:
    """One patrol; `lock` holds its row until the transaction ends (points arrive in parallel)."""
    if lock:
        connection.execute(
            text("SELECT 1 FROM patrol WHERE id = :id FOR UPDATE"), {"id": patrol_id}
        )
    row = (
        connection.execute(
            text(f"SELECT {PATROL_COLUMNS} {_FROM} WHERE p.id = :id"), {"id": patrol_id}
        )
        .mappings()
        .first()
    )
    return dict(row) if row is not None else None


def insert_points(
    connection: Connection,
    patrol_id: int,
    times: list[datetime],
    lon: np.ndarray,
    lat: np.ndarray,
    accuracy_m: list[float | None],
) -> list[datetime]:
    """Store fixes not stored yet (one per patrol and moment); the times actually added."""
    rows = connection.execute(
        text(
            "INSERT INTO patrol_point (patrol_id, at, lon, lat, accuracy_m) "
            "SELECT :patrol_id, f.at, f.lon, f.lat, f.accuracy_m FROM unnest("
            "CAST(:at AS timestamptz[]), CAST(:lon AS float8[]), CAST(:lat AS float8[]), "
            "CAST(:accuracy AS float8[])) AS f(at, lon, lat, accuracy_m) "
            "ON CONFLICT (patrol_id, at) DO NOTHING RETURNING at"
        ),
        {
            "patrol_id": patrol_id,
            "at": times,
            "lon": [float(v) for v in lon],
            "lat": [float(v) for v in lat],
            "accuracy": accuracy_m,
        },
    ).scalars()
    return list(rows)


def patrol_fixes(connection: Connection, patrol_id: int) -> dict[str, np.ndarray]:
    """All fixes of a patrol in time order: epoch seconds, lon, lat, accuracy (NaN unknown), kept."""
    rows = connection.execute(
        text(
            "SELECT extract(epoch FROM at)::float8, lon, lat, accuracy_m, kept FROM patrol_point "
            "WHERE patrol_id = :id ORDER BY at"
        ),
        {"id": patrol_id},
    ).all()
    columns = list(zip(*rows, strict=True)) if rows else [(), (), (), (), ()]
    return {
        "times": np.asarray(columns[0], dtype=float),
        "lon": np.asarray(columns[1], dtype=float),
        "lat": np.asarray(columns[2], dtype=float),
        "accuracy_m": np.array([np.nan if v is None else v for v in columns[3]], dtype=float),
        "kept": np.asarray(columns[4], dtype=bool),
    }


def set_dropped(connection: Connection, patrol_id: int, dropped_epochs: list[float]) -> None:
    """Mark exactly these fixes (by epoch second) as dropped, every other one as kept."""
    connection.execute(
        text(
            "UPDATE patrol_point SET kept = NOT (extract(epoch FROM at)::float8 = ANY(:dropped)) "
            "WHERE patrol_id = :id "
            "AND kept IS DISTINCT FROM NOT (extract(epoch FROM at)::float8 = ANY(:dropped))"
        ),
        {"id": patrol_id, "dropped": dropped_epochs},
    )


def update_track(
    connection: Connection,
    patrol_id: int,
    *,
    points: int,
    dropped: int,
    length_m: float,
    track_wkt: str | None,
    grid_code: str | None,
) -> None:
    connection.execute(
        text(
            "UPDATE patrol SET points = :points, dropped_points = :dropped, length_m = :length, "
            "track = ST_GeomFromText(CAST(:wkt AS text), 4326), "
            "grid_code = coalesce(CAST(:grid AS varchar), grid_code) WHERE id = :id"
        ),
        {
            "id": patrol_id,
            "points": points,
            "dropped": dropped,
            "length": length_m,
            "wkt": track_wkt,
            "grid": grid_code,
        },
    )


def set_ended(connection: Connection, patrol_id: int, ended_at: datetime) -> None:
    connection.execute(
        text("UPDATE patrol SET ended_at = :ended WHERE id = :id"),
        {"id": patrol_id, "ended": ended_at},
    )


def track_coordinates(connection: Connection, patrol_id: int) -> np.ndarray:
    """The stored track's vertices: rows lon, lat, m (epoch seconds)."""
    wkb = connection.execute(
        text("SELECT ST_AsBinary(track) FROM patrol WHERE id = :id AND track IS NOT NULL"),
        {"id": patrol_id},
    ).scalar()
    if wkb is None:
        return np.zeros((0, 3))
    return shapely.get_coordinates(shapely.from_wkb(bytes(wkb)), include_m=True)


def list_patrols(
    connection: Connection,
    *,
    begin: datetime,
    end: datetime,
    not_before: datetime,
    owner_token: int | None,
    owner_staff: int | None,
    staff_id: int | None,
    area: shapely.Geometry | None,
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    """Patrols that ran during [begin, end), newest first, and how many there are in all.

    `owner_*` restricts to one worker's own (same token or same staff member); `area` to tracks
    crossing it."""
    clauses = [
        "p.started_at < :end",
        "(p.ended_at IS NULL OR p.ended_at >= :begin)",
        "p.started_at >= :not_before",
    ]
    params: dict[str, Any] = {"begin": begin, "end": end, "not_before": not_before}
    if owner_token is not None:
        clauses.append("(p.token_id = :owner_token OR p.staff_id = :owner_staff)")
        params.update({"owner_token": owner_token, "owner_staff": owner_staff})
    if staff_id is not None:
        clauses.append("p.staff_id = :staff_id")
        params["staff_id"] = staff_id
    if area is not None:
        clauses.append(
            "p.track && ST_GeomFromWKB(:area, 4326) "
            "AND ST_Intersects(ST_Force2D(p.track), ST_GeomFromWKB(:area, 4326))"
        )
        params["area"] = shapely.to_wkb(area)
    condition = " AND ".join(clauses)
    total = connection.execute(
        text(f"SELECT count(*) {_FROM} WHERE {condition}"), params
    ).scalar_one()
    rows = connection.execute(
        text(
            f"SELECT {PATROL_COLUMNS} {_FROM} WHERE {condition} "
            "ORDER BY p.started_at DESC, p.id DESC LIMIT :limit OFFSET :offset"
        ),
        {**params, "limit": limit, "offset": offset},
    ).mappings()
    return [dict(row) for row in rows], int(total)


def tracks_near(
    connection: Connection,
    *,
    box: shapely.Geometry,
    begin: datetime,
    end: datetime,
    not_before: datetime,
    staff_id: int | None,
) -> list[dict[str, Any]]:
    """Tracks whose box meets `box` and that ran during [begin, end): id, owner, WKB (with M)."""
    clauses = [
        "p.track && ST_GeomFromWKB(:box, 4326)",
        "p.started_at < :end",
        "(p.ended_at IS NULL OR p.ended_at >= :begin)",
        "p.started_at >= :not_before",
    ]
    params: dict[str, Any] = {
        "box": shapely.to_wkb(box),
        "begin": begin,
        "end": end,
        "not_before": not_before,
    }
    if staff_id is not None:
        clauses.append("p.staff_id = :staff_id")
        params["staff_id"] = staff_id
    rows = connection.execute(
        text(
            "SELECT p.id, p.token_id, p.staff_id, s.name AS staff_name, ST_AsBinary(p.track) AS wkb "
            f"{_FROM} WHERE {' AND '.join(clauses)} ORDER BY p.id"
        ),
        params,
    ).mappings()
    return [dict(row) for row in rows]


def buildings_within(connection: Connection, area: shapely.Geometry) -> list[dict[str, Any]]:
    """Buildings whose interior point lies in `area`: code, name, address, WKB footprint."""
    rows = connection.execute(
        text(
            "SELECT code, name, address, ST_AsBinary(geom) AS wkb FROM building "
            "WHERE geom && ST_GeomFromWKB(:a, 4326) "
            "AND ST_Covers(ST_GeomFromWKB(:a, 4326), ST_PointOnSurface(geom)) ORDER BY code"
        ),
        {"a": shapely.to_wkb(area)},
    ).mappings()
    return [dict(row) for row in rows]


def purge_before(connection: Connection, before: datetime) -> tuple[int, int]:
    """Delete patrols that started before `before` (their fixes go with them): (patrols, fixes)."""
    fixes = connection.execute(
        text(
            "SELECT count(*) FROM patrol_point pp JOIN patrol p ON p.id = pp.patrol_id "
            "WHERE p.started_at < :before"
        ),
        {"before": before},
    ).scalar_one()
    patrols = connection.execute(
        text("DELETE FROM patrol WHERE started_at < :before"), {"before": before}
    ).rowcount
    return int(patrols), int(fixes)


def last_fix_at(connection: Connection, patrol_id: int) -> datetime | None:
    """The time of the patrol's latest fix (None when it has none)."""
    return connection.execute(
        text("SELECT max(at) FROM patrol_point WHERE patrol_id = :id"), {"id": patrol_id}
    ).scalar()
