"""Open311's reads: the category catalogue as services, events as service requests."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

# What a service request shows: the event, its category's name, its unit's name, and the note of
# its latest history line that has one (status_notes).
_REQUEST = (
    "SELECT e.id, e.source, e.external_id, e.category_code, c.name_zh AS service_name, e.status, "
    "e.description, e.address, ST_X(e.geom) AS lon, ST_Y(e.geom) AS lat, e.grid_code, "
    "e.unit_code, u.name AS unit_name, e.reported_at, e.received_at, e.updated_at, e.due_at, "
    "(SELECT h.note FROM event_history h WHERE h.event_id = e.id AND h.note IS NOT NULL "
    "ORDER BY h.at DESC, h.id DESC LIMIT 1) AS last_note "
    "FROM event e LEFT JOIN event_category c ON c.code = e.category_code "
    "LEFT JOIN handling_unit u ON u.code = e.unit_code "
)


def services(connection: Connection) -> list[dict[str, Any]]:
    """Every category, with its parent's name: events (事件) first, then components (部件)."""
    rows = connection.execute(
        text(
            "SELECT c.code, c.name_zh AS name, c.kind, c.default_tier, p.name_zh AS parent_name "
            "FROM event_category c LEFT JOIN event_category p ON p.code = c.parent_code "
            "ORDER BY c.kind = 'component', c.code"
        )
    ).mappings()
    return [dict(r) for r in rows]


def requests_by_id(connection: Connection, ids: list[int]) -> list[dict[str, Any]]:
    rows = connection.execute(
        text(f"{_REQUEST}WHERE e.id = ANY(:ids) ORDER BY e.reported_at DESC, e.id DESC"),
        {"ids": ids},
    ).mappings()
    return [dict(r) for r in rows]


def requests_between(
    connection: Connection,
    *,
    start: datetime,
    end: datetime,
    codes: list[str] | None,
    statuses: list[str] | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Events reported in [start, end], newest first, optionally of these categories and states."""
    clauses = ["e.reported_at >= :start", "e.reported_at <= :end"]
    params: dict[str, Any] = {"start": start, "end": end, "limit": limit}
    if codes is not None:
        clauses.append("e.category_code = ANY(:codes)")
        params["codes"] = codes
    if statuses is not None:
        clauses.append("e.status = ANY(:statuses)")
        params["statuses"] = statuses
    rows = connection.execute(
        text(
            f"{_REQUEST}WHERE {' AND '.join(clauses)} "
            "ORDER BY e.reported_at DESC, e.id DESC LIMIT :limit"
        ),
        params,
    ).mappings()
    return [dict(r) for r in rows]


def request_id_for(connection: Connection, source: str, external_id: str) -> int | None:
    """The event stored for a token (its source and external id), if any."""
    found = connection.execute(
        text("SELECT id FROM event WHERE source = :source AND external_id = :external_id"),
        {"source": source, "external_id": external_id},
    ).scalar()
    return int(found) if found is not None else None
