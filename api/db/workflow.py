"""Rows of the event loop: the workflow catalogue (rules, units, calendar), locked event rows,
their changes, history lines, supervision orders and the outbox."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, text

# Columns a transition may change (every other name is refused before it reaches SQL text).
CHANGEABLE = frozenset(
    {
        "status",
        "category_code",
        "tier",
        "unit_code",
        "assignee_id",
        "accept_due_at",
        "accepted_at",
        "responded_at",
        "dispatched_at",
        "handled_at",
        "closed_at",
        "due_at",
        "postpone_count",
        "postpone_requested_until",
        "rework_count",
        "return_count",
        "escalation_count",
        "handling_hours",
        "satisfaction",
        "merged_into",
        "warning_level",
    }
)


def dispatch_rules(connection: Connection) -> list[dict[str, Any]]:
    rows = connection.execute(
        text(
            "SELECT category_code, tier, unit_kind, accept_hours, handle_amount, handle_unit "
            "FROM dispatch_rule ORDER BY id"
        )
    ).mappings()
    return [dict(r) for r in rows]


def handling_units(connection: Connection) -> list[dict[str, Any]]:
    rows = connection.execute(
        text(
            "SELECT code, name, kind, tier, areas, phone FROM handling_unit WHERE active "
            "ORDER BY tier DESC, code"
        )
    ).mappings()
    return [dict(r) for r in rows]


def category_tiers(connection: Connection) -> dict[str, int | None]:
    return dict(connection.execute(text("SELECT code, default_tier FROM event_category")).all())


def calendar_exceptions(connection: Connection) -> dict[date, bool]:
    return dict(connection.execute(text("SELECT day, workday FROM work_calendar")).all())


def calendar_rows(connection: Connection, year: int | None = None) -> list[dict[str, Any]]:
    clause = " WHERE extract(year FROM day) = :year" if year else ""
    rows = connection.execute(
        text(f"SELECT day, workday, name FROM work_calendar{clause} ORDER BY day"),
        {"year": year},
    ).mappings()
    return [dict(r) for r in rows]


def set_calendar_day(connection: Connection, day: date, workday: bool, name: str | None) -> None:
    connection.execute(
        text(
            "INSERT INTO work_calendar (day, workday, name) VALUES (:day, :workday, :name) "
            "ON CONFLICT (day) DO UPDATE SET workday = EXCLUDED.workday, name = EXCLUDED.name"
        ),
        {"day": day, "workday": workday, "name": name},
    )


def delete_calendar_day(connection: Connection, day: date) -> bool:
    return bool(
        connection.execute(
            text("DELETE FROM work_calendar WHERE day = :day"), {"day": day}
        ).rowcount
    )


def lock_event(connection: Connection, event_id: int) -> dict[str, Any] | None:
    """The event's workflow columns, locked until the transaction ends (one transition at a time)."""
    row = (
        connection.execute(
            text(
                "SELECT id, source, external_id, category_code, status, version, tier, unit_code, "
                "assignee_id, grid_code, reported_at, received_at, accept_due_at, accepted_at, "
                "responded_at, dispatched_at, handled_at, closed_at, due_at, postpone_count, "
                "postpone_requested_until, rework_count, return_count, escalation_count, "
                "merged_into, duplicate_candidates FROM event WHERE id = :id FOR UPDATE"
            ),
            {"id": event_id},
        )
        .mappings()
        .first()
    )
    return dict(row) if row else None


def update_event(connection: Connection, event_id: int, changes: dict[str, Any]) -> int:
    """Apply `changes` and bump the version; returns the new version."""
    unknown = set(changes) - CHANGEABLE
    if unknown:
        raise ValueError(f"not a workflow column: {sorted(unknown)}")
    assignments = "".join(f"{name} = :{name}, " for name in sorted(changes))
    return int(
        connection.execute(
            text(
                f"UPDATE event SET {assignments}version = version + 1, updated_at = now() "
                "WHERE id = :event_id RETURNING version"
            ),
            {**changes, "event_id": event_id},
        ).scalar_one()
    )


def add_history(
    connection: Connection,
    *,
    event_id: int,
    action: str,
    from_status: str | None,
    status: str,
    actor: str,
    note: str | None,
    version: int,
    lon: float | None = None,
    lat: float | None = None,
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> None:
    connection.execute(
        text(
            "INSERT INTO event_history (event_id, at, action, from_status, status, actor, note, "
            "version, geom, details) VALUES (:event_id, COALESCE(:at, now()), :action, "
            ":from_status, :status, :actor, :note, :version, CASE WHEN CAST(:lon AS float8) IS NULL "
            "THEN NULL ELSE ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) END, CAST(:details AS jsonb))"
        ),
        {
            "event_id": event_id,
            "at": at,
            "action": action,
            "from_status": from_status,
            "status": status,
            "actor": actor,
            "note": note,
            "version": version,
            "lon": lon,
            "lat": lat,
            "details": orjson.dumps(details or {}).decode(),
        },
    )


def add_supervision(
    connection: Connection, event_id: int, reason: str, due_at: datetime | None, actor: str
) -> int:
    return int(
        connection.execute(
            text(
                "INSERT INTO supervision (event_id, reason, due_at, issued_by) "
                "VALUES (:event_id, :reason, :due_at, :actor) RETURNING id"
            ),
            {"event_id": event_id, "reason": reason, "due_at": due_at, "actor": actor},
        ).scalar_one()
    )


def supervisions(connection: Connection, event_id: int) -> list[dict[str, Any]]:
    rows = connection.execute(
        text(
            "SELECT id, reason, due_at, issued_by, issued_at FROM supervision "
            "WHERE event_id = :id ORDER BY issued_at, id"
        ),
        {"id": event_id},
    ).mappings()
    return [dict(r) for r in rows]


def staff_exists(connection: Connection, staff_id: int) -> bool:
    return (
        connection.execute(
            text("SELECT 1 FROM staff WHERE id = :id AND active"), {"id": staff_id}
        ).first()
        is not None
    )


def enqueue(
    connection: Connection, kind: str, event_id: int | None, payload: dict[str, Any]
) -> int:
    """A notification in the outbox, committed with the change it announces (api/outbox)."""
    return int(
        connection.execute(
            text(
                "INSERT INTO outbox (event_id, kind, payload) "
                "VALUES (:event_id, :kind, CAST(:payload AS jsonb)) RETURNING id"
            ),
            {"event_id": event_id, "kind": kind, "payload": orjson.dumps(payload).decode()},
        ).scalar_one()
    )


def categories(connection: Connection) -> list[dict[str, Any]]:
    rows = connection.execute(
        text(
            "SELECT code, name_zh AS name, kind, parent_code, default_tier FROM event_category "
            "ORDER BY code"
        )
    ).mappings()
    return [dict(r) for r in rows]


def upsert_unit(connection: Connection, code: str, values: dict[str, Any]) -> bool:
    """Create or replace a handling unit; True when it was new."""
    return bool(
        connection.execute(
            text(
                "INSERT INTO handling_unit (code, name, kind, tier, areas, phone, active) "
                "VALUES (:code, :name, :kind, :tier, :areas, :phone, :active) "
                "ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, kind = EXCLUDED.kind, "
                "tier = EXCLUDED.tier, areas = EXCLUDED.areas, phone = EXCLUDED.phone, "
                "active = EXCLUDED.active RETURNING (xmax = 0)"
            ),
            {"code": code, **values},
        ).scalar_one()
    )


def upsert_rule(connection: Connection, values: dict[str, Any]) -> None:
    """Create or replace the rule of a (category, tier); a NULL category is the tier's fallback
    (its own unique index, since UNIQUE lets NULLs repeat)."""
    target = (
        "(tier) WHERE category_code IS NULL"
        if values["category_code"] is None
        else "ON CONSTRAINT uq_dispatch_rule_category_tier"
    )
    connection.execute(
        text(
            "INSERT INTO dispatch_rule (category_code, tier, unit_kind, accept_hours, "
            "handle_amount, handle_unit) VALUES (:category_code, :tier, :unit_kind, "
            f":accept_hours, :handle_amount, :handle_unit) ON CONFLICT {target} DO UPDATE SET "
            "unit_kind = EXCLUDED.unit_kind, accept_hours = EXCLUDED.accept_hours, "
            "handle_amount = EXCLUDED.handle_amount, handle_unit = EXCLUDED.handle_unit"
        ),
        values,
    )


def last_handler(connection: Connection, event_id: int) -> tuple[str, int | None] | None:
    """Who recorded the event's last 处置: the actor, and the person their token belongs to."""
    row = connection.execute(
        text(
            "SELECT h.actor, t.staff_id FROM event_history h LEFT JOIN api_token t "
            "ON h.actor LIKE 'token:' || t.id || ':%' WHERE h.event_id = :id "
            "AND h.action = 'handle' ORDER BY h.at DESC, h.id DESC LIMIT 1"
        ),
        {"id": event_id},
    ).first()
    return (row[0], row[1]) if row else None


def distance_to_event(
    connection: Connection, event_id: int, lon: float, lat: float
) -> float | None:
    """Metres from a WGS84 position to the event's point (None when the event has none)."""
    return connection.execute(
        text(
            "SELECT ST_Distance(geom::geography, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography) "
            "FROM event WHERE id = :id"
        ),
        {"id": event_id, "lon": lon, "lat": lat},
    ).scalar()
