"""Event rows: idempotent insert on (source, external_id), history, reads."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

from api.db import partitions
from api.db.filters import in_generation, where
from api.db.geojson import feature
from api.workflow.machine import OPEN

_COLUMNS = (
    "id, source, external_id, category_code, description, address, raw_x, raw_y, raw_crs, "
    "ST_X(geom) AS lon, ST_Y(geom) AS lat, grid_code, generation_id, status, reporter_name, "
    "reporter_phone, payload_sha256, reported_at, received_at, due_at, closed_at, version, tier, "
    "unit_code, assignee_id, accept_due_at, accepted_at, responded_at, dispatched_at, handled_at, "
    "postpone_count, postpone_requested_until, rework_count, return_count, escalation_count, "
    "handling_hours, satisfaction, merged_into, duplicate_candidates, warning_level"
)
# The loop's open states as an SQL list (constant text from api/workflow/machine.py).
OPEN_STATUSES = "(" + ", ".join(f"'{state.value}'" for state in sorted(OPEN)) + ")"
# One JSON array of rows in, one INSERT: a batch of events costs a few statements, not 3 per event.
_RECORD = (
    "source text, external_id text, category_code text, description text, address text, "
    "raw_x float8, raw_y float8, raw_crs text, lon float8, lat float8, grid_code text, "
    "generation_id int, reporter_name text, reporter_phone text, payload_sha256 text, "
    "reported_at timestamptz, tier int, accept_due_at timestamptz, geocode jsonb, ordinal int"
)


def insert_events(connection: Connection, values: list[dict[str, Any]], actor: str) -> list[int]:
    """Insert each event unless its (source, external_id) exists; the reporting is its first
    history line and its first notification. Returns the new ids.

    The keys are claimed first in event_key (ON CONFLICT there: `event` is partitioned by month
    and cannot hold a unique (source, external_id)); the first of a batch's repeats wins, ids
    follow the batch order. A month without a partition is created first (partitions.ensure)."""
    if not values:
        return []
    partitions.ensure(connection, [v["reported_at"] for v in values])
    payload = json.dumps([{**v, "ordinal": i} for i, v in enumerate(values)], default=_json_default)
    connection.execute(text("SELECT set_config('wangge.event_keys_written', 'on', true)"))
    new_ids = list(
        connection.execute(
            text(
                f"WITH r AS (SELECT * FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r({_RECORD})), "
                "keys AS (INSERT INTO event_key (id, source, external_id) SELECT "
                "nextval('event_id_seq'), r.source, r.external_id FROM r ORDER BY r.ordinal "
                "ON CONFLICT DO NOTHING RETURNING id, source, external_id), "
                "firsts AS (SELECT DISTINCT ON (source, external_id) * FROM r "
                "ORDER BY source, external_id, ordinal) "
                "INSERT INTO event (id, source, external_id, category_code, description, address, "
                "raw_x, raw_y, raw_crs, geom, grid_code, generation_id, status, reporter_name, "
                "reporter_phone, payload_sha256, reported_at, tier, accept_due_at) SELECT k.id, "
                "r.source, r.external_id, r.category_code, r.description, r.address, r.raw_x, "
                "r.raw_y, r.raw_crs, CASE WHEN r.lon IS NULL THEN NULL ELSE "
                "ST_SetSRID(ST_MakePoint(r.lon, r.lat), 4326) END, r.grid_code, r.generation_id, "
                "'reported', r.reporter_name, r.reporter_phone, r.payload_sha256, r.reported_at, "
                "r.tier, r.accept_due_at FROM firsts r JOIN keys k USING (source, external_id) "
                "ORDER BY k.id RETURNING id"
            ),
            {"rows": payload},
        ).scalars()
    )
    connection.execute(text("SELECT set_config('wangge.event_keys_written', '', true)"))
    if new_ids:
        connection.execute(
            text(
                # How an address-only event was placed (precision, place, grid shares) stays
                # in its first history line: the dispatcher sees it when dispatching by hand.
                f"WITH r AS (SELECT * FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r({_RECORD})) "
                "INSERT INTO event_history (event_id, at, action, status, actor, note, version, "
                "details) SELECT e.id, e.received_at, 'report', 'reported', :actor, "
                "CASE WHEN e.grid_code IS NULL THEN '已受理，待人工分派（未能定位到网格）' "
                "ELSE '已受理' END, 1, CASE WHEN g.geocode IS NULL THEN '{}'::jsonb "
                "ELSE jsonb_build_object('geocode', g.geocode) END FROM event e "
                "LEFT JOIN LATERAL (SELECT r.geocode FROM r WHERE r.source = e.source "
                "AND r.external_id = e.external_id ORDER BY r.ordinal LIMIT 1) g ON true "
                "WHERE e.id = ANY(:ids)"
            ),
            {"actor": actor, "ids": new_ids, "rows": payload},
        )
        connection.execute(
            text(
                "INSERT INTO outbox (event_id, kind, payload) SELECT id, 'transition', "
                "jsonb_build_object('event_id', id, 'source', source, 'external_id', external_id, "
                "'action', 'report', 'from', NULL, 'status', 'reported', 'version', 1, "
                "'grid_code', grid_code, 'at', received_at) FROM event WHERE id = ANY(:ids) ORDER BY id"
            ),
            {"ids": new_ids},
        )
    return new_ids


def find_events(connection: Connection, keys: list[tuple[str, str]]) -> dict[tuple[str, str], dict]:
    """Stored events by (source, external_id)."""
    rows = connection.execute(
        text(
            f"SELECT {_COLUMNS} FROM event WHERE (source, external_id) IN "
            "(SELECT * FROM unnest(CAST(:sources AS text[]), CAST(:ids AS text[])))"
        ),
        {"sources": [k[0] for k in keys], "ids": [k[1] for k in keys]},
    ).mappings()
    return {(r["source"], r["external_id"]): dict(r) for r in rows}


def propose_duplicates(
    connection: Connection, new_ids: list[int], distance_m: float, window_hours: float
) -> dict[int, list[int]]:
    """Open earlier events of the same category within `distance_m` and `window_hours` of each
    new one: proposed as its original (同一问题多人上报), stored on the new event."""
    if not new_ids or distance_m <= 0:
        return {}
    rows = connection.execute(
        text(
            "WITH found AS (SELECT n.id, array_agg(o.id ORDER BY o.id) AS originals FROM event n "
            "JOIN event o ON o.category_code = n.category_code AND o.id < n.id "
            # A box of `metres` in degrees of longitude (the wider side) at the event's latitude.
            "AND o.geom && ST_Expand(n.geom, "
            ":metres / (111320.0 * greatest(cos(radians(ST_Y(n.geom))), 0.1))) "
            "AND ST_DWithin(o.geom::geography, n.geom::geography, :metres) "
            f"AND o.status IN {OPEN_STATUSES} AND o.merged_into IS NULL "
            "AND o.reported_at >= n.reported_at - make_interval(secs => :window * 3600) "
            "WHERE n.id = ANY(:ids) GROUP BY n.id) "
            "UPDATE event e SET duplicate_candidates = found.originals FROM found "
            "WHERE e.id = found.id RETURNING e.id, found.originals"
        ),
        {
            "ids": new_ids,
            "metres": distance_m,
            "window": window_hours,
        },
    ).all()
    return {int(r[0]): list(r[1]) for r in rows}


def _json_default(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON: {type(value).__name__}")


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
            "SELECT at, action, from_status, status, actor, note, version, ST_X(geom) AS lon, "
            "ST_Y(geom) AS lat, details FROM event_history WHERE event_id = :id ORDER BY at, id"
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
            f" WHERE e2.status IN {OPEN_STATUSES} AND {in_generation('g')} "
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
            f"WHERE status IN {OPEN_STATUSES} AND grid_code IS NOT NULL "
            "AND generation_id IS DISTINCT FROM :g RETURNING id, status) "
            "INSERT INTO event_history (event_id, action, from_status, status, actor, note) "
            "SELECT id, 'unplace', status, status, :actor, :note FROM stranded"
        ),
        {
            "g": generation,
            "actor": actor,
            "note": f"第 {generation} 版网格生效后不在任何网格内，待人工分派",
        },
    ).rowcount


def as_timestamp(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


@dataclass(frozen=True)
class EventFilter:
    """Which events a list shows: only values, whitelisted sorts; never SQL text."""

    open_only: bool = True
    states: tuple[str, ...] = ()
    unit: str | None = None
    category: str | None = None
    grid_codes: tuple[str, ...] | None = None
    or_assignee: int | None = None  # with grid_codes: in those grids, or assigned to this person
    with_unplaced: bool = False
    unassigned_only: bool = False  # no grid: waiting for a dispatcher to place it (人工分派)
    sort: str = "id"  # id | deadline


SORTS = {
    "id": "e.id",
    # The clock that runs now: to accept before 立案, to handle after; no deadline last.
    "deadline": "CASE WHEN e.status = 'reported' THEN e.accept_due_at ELSE e.due_at END "
    "NULLS LAST, e.id",
}


def event_rows(
    connection: Connection,
    chosen: EventFilter,
    *,
    bbox: Any = None,
    limit: int = 1000,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Events for maps and queues (at most limit + 1, so callers know if there are more).
    The description is here; routes leave it out for callers not entitled to it."""
    clauses = [] if chosen.with_unplaced else ["e.geom IS NOT NULL"]
    params: dict[str, Any] = {"limit": limit + 1, "offset": offset}
    if chosen.open_only:
        clauses.append(f"e.status IN {OPEN_STATUSES}")
    if chosen.states:
        clauses.append("e.status = ANY(CAST(:states AS text[]))")
        params["states"] = list(chosen.states)
    if chosen.unassigned_only:
        clauses.append("e.grid_code IS NULL")
    if chosen.unit is not None:
        clauses.append("e.unit_code = :unit")
        params["unit"] = chosen.unit
    if chosen.category is not None:
        clauses.append("e.category_code = :category")
        params["category"] = chosen.category
    if chosen.grid_codes is not None:
        params["codes"] = list(chosen.grid_codes)
        if chosen.or_assignee is not None:
            clauses.append(
                "(e.grid_code = ANY(CAST(:codes AS text[])) OR e.assignee_id = :assignee)"
            )
            params["assignee"] = chosen.or_assignee
        else:
            clauses.append("e.grid_code = ANY(CAST(:codes AS text[]))")
    if bbox is not None:
        clause, values = bbox.clause("e.geom")
        clauses.append(clause)
        params.update(values)
    rows = connection.execute(
        text(
            "SELECT e.id, e.source, e.category_code, e.description, e.status, e.grid_code, "
            "e.reported_at, e.received_at, e.accept_due_at, e.accepted_at, e.due_at, e.tier, "
            "e.unit_code, e.version, e.duplicate_candidates, e.postpone_requested_until, "
            "e.assignee_id, ST_X(e.geom) AS lon, ST_Y(e.geom) AS lat, "
            "(SELECT count(*) FROM supervision s WHERE s.event_id = e.id) AS supervised, "
            "ST_AsGeoJSON(e.geom) AS geometry "
            f"FROM event e{where(clauses)} ORDER BY {SORTS[chosen.sort]} LIMIT :limit OFFSET :offset"
        ),
        params,
    ).mappings()
    return [dict(r) for r in rows]


def event_feature(
    row: dict[str, Any], label: str, warning: dict[str, Any] | None
) -> dict[str, Any]:
    """One event as a GeoJSON feature (null geometry when it could not be placed)."""
    return feature(
        json.loads(row["geometry"]) if row["geometry"] else None,
        {
            "id": row["id"],
            "source": row["source"],
            "category_code": row["category_code"],
            "description": row["description"],
            "status": row["status"],
            "status_label": label,
            "grid_code": row["grid_code"],
            "tier": row["tier"],
            "unit_code": row["unit_code"],
            "version": row["version"],
            "warning": warning["level"] if warning else None,
            "overdue": bool(warning and warning["level"] == "red"),
            "supervised": row["supervised"],
            "duplicate_candidates": row["duplicate_candidates"] or [],
            "postponement_requested": row["postpone_requested_until"] is not None,
            "reported_at": as_timestamp(row["reported_at"]),
            "accept_due_at": as_timestamp(row["accept_due_at"]),
            "due_at": as_timestamp(row["due_at"]),
        },
        str(row["id"]),
    )


# The properties of an event feature, in event_feature's order: what `?fields=` may choose from.
EVENT_PROPERTIES = (
    "id",
    "source",
    "category_code",
    "description",
    "status",
    "status_label",
    "grid_code",
    "tier",
    "unit_code",
    "version",
    "warning",
    "overdue",
    "supervised",
    "duplicate_candidates",
    "postponement_requested",
    "reported_at",
    "accept_due_at",
    "due_at",
)
COORDINATE_DIGITS = 6  # with ?fields=: about 0.1 m (every out_crs is in degrees)


def keep_properties(collection: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """Event features with only these properties (and always `id`), coordinates rounded.
    Run it after the privacy redaction, which reads grid_code and unit_code: it only removes,
    so a property the caller may not see stays absent."""
    kept = {"id", *fields}
    for item in collection["features"]:
        item["properties"] = {k: v for k, v in item["properties"].items() if k in kept}
        geometry = item["geometry"]
        if geometry is not None and "coordinates" in geometry:
            geometry["coordinates"] = _rounded(geometry["coordinates"])
    return collection


def _rounded(coordinates: Any) -> Any:
    if isinstance(coordinates, list):
        return [_rounded(part) for part in coordinates]
    return round(coordinates, COORDINATE_DIGITS)
