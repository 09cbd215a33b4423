"""The figures a supervisor is judged by (考核), aggregated in PostgreSQL per key.

Four narrow queries, each on an index: reports in the period (reported_at), deadlines falling in the
period (due_at), open events past their deadline now (the partial open-deadline index), and
supervision orders issued in the period. `event` is partitioned by month of reported_at
(migrations/0008): a query that selects by another moment also says `reported_at < :end` — every
deadline, closing and supervision order comes after the report — so the months after the period
are never read (the plan shows which; tests/test_event_partitions.py counts them). The key is one of a few whitelisted columns (the grid, the
handling unit, the assignee); api/workflow/kpis.py rolls grids up to communities and streets.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

from api.db.events import OPEN_STATUSES

KEY_COLUMNS = {"grid": "grid_code", "unit": "unit_code", "staff": "assignee_id"}
FINISHED_WITHOUT_HANDLING = "('rejected', 'cancelled', 'merged')"


def _without_jit(connection: Connection) -> None:
    """No JIT compilation for the rest of this transaction: over a dozen monthly partitions it
    compiles each partition's expressions and costs seconds where the query costs 0.2 s
    (measured at 1,000,000 events: trend of a month 2.8 s with JIT, 0.2 s without)."""
    connection.execute(text("SELECT set_config('jit', 'off', true)"))


def _scope(codes: list[str] | None, params: dict[str, Any], alias: str = "") -> str:
    if codes is None:
        return ""
    params["codes"] = codes
    return f" AND {alias}grid_code = ANY(CAST(:codes AS text[]))"


def received(
    connection: Connection, key: str, start: datetime, end: datetime, codes: list[str] | None
) -> list[dict[str, Any]]:
    """Per key: reports in [start, end) (duplicates merged into another not counted), accepted,
    and those answered (accepted, rejected, merged, cancelled) within the time to accept."""
    _without_jit(connection)
    column = KEY_COLUMNS[key]
    params: dict[str, Any] = {"start": start, "end": end}
    rows = connection.execute(
        text(
            f"SELECT {column} AS key, count(*) FILTER (WHERE status <> 'merged') AS received, "
            "count(*) FILTER (WHERE accepted_at IS NOT NULL) AS accepted, "
            "count(*) FILTER (WHERE status <> 'merged' AND responded_at <= accept_due_at) "
            "AS responded_on_time FROM event WHERE reported_at >= :start AND reported_at < :end"
            f"{_scope(codes, params)} GROUP BY 1"
        ),
        params,
    ).mappings()
    return [dict(r) for r in rows]


def due(
    connection: Connection, key: str, start: datetime, end: datetime, codes: list[str] | None
) -> list[dict[str, Any]]:
    """Per key: events whose (final) deadline falls in [start, end) and what became of them."""
    _without_jit(connection)
    column = KEY_COLUMNS[key]
    params: dict[str, Any] = {"start": start, "end": end}
    rows = connection.execute(
        text(
            f"SELECT {column} AS key, count(*) AS due, "
            "count(*) FILTER (WHERE closed_at IS NOT NULL) AS closed, "
            "count(*) FILTER (WHERE postpone_count > 0) AS postponed, "
            "count(*) FILTER (WHERE postpone_count = 0 AND closed_at <= due_at) AS closed_on_time, "
            "count(*) FILTER (WHERE handled_at IS NOT NULL OR closed_at IS NOT NULL "
            "OR rework_count > 0) AS handled, "
            "count(*) FILTER (WHERE rework_count > 0) AS reworked, "
            "array_agg(handling_hours) FILTER (WHERE closed_at IS NOT NULL "
            "AND handling_hours IS NOT NULL) AS hours, "
            "count(satisfaction) AS evaluated, coalesce(sum(satisfaction), 0) AS satisfaction_sum "
            "FROM event WHERE due_at >= :start AND due_at < :end AND reported_at < :end "
            f"AND status NOT IN {FINISHED_WITHOUT_HANDLING}{_scope(codes, params)} GROUP BY 1"
        ),
        params,
    ).mappings()
    return [dict(r) for r in rows]


def overdue_now(
    connection: Connection, key: str, now: datetime, codes: list[str] | None
) -> list[dict[str, Any]]:
    """Per key: open events past their deadline at `now` (to accept, or to handle)."""
    _without_jit(connection)
    column = KEY_COLUMNS[key]
    params: dict[str, Any] = {"now": now}
    rows = connection.execute(
        text(
            f"SELECT {column} AS key, count(*) AS overdue_now FROM event "
            f"WHERE status IN {OPEN_STATUSES} AND ((status = 'reported' AND accept_due_at < :now) "
            f"OR (status <> 'reported' AND due_at < :now)){_scope(codes, params)} GROUP BY 1"
        ),
        params,
    ).mappings()
    return [dict(r) for r in rows]


def supervised(
    connection: Connection, key: str, start: datetime, end: datetime, codes: list[str] | None
) -> list[dict[str, Any]]:
    """Per key: supervision orders (督办) issued in [start, end)."""
    _without_jit(connection)
    column = KEY_COLUMNS[key]
    params: dict[str, Any] = {"start": start, "end": end}
    rows = connection.execute(
        text(
            f"SELECT e.{column} AS key, count(*) AS supervised FROM supervision s "
            "JOIN event e ON e.id = s.event_id AND e.reported_at < :end "
            "WHERE s.issued_at >= :start AND s.issued_at < :end"
            f"{_scope(codes, params, 'e.')} GROUP BY 1"
        ),
        params,
    ).mappings()
    return [dict(r) for r in rows]


def trend(
    connection: Connection,
    interval: str,
    start: datetime,
    end: datetime,
    zone: str,
    codes: list[str] | None,
) -> list[dict[str, Any]]:
    """Per day, week or month (local time): reported, closed, closed on time, and deadlines missed."""
    _without_jit(connection)
    assert interval in ("day", "week", "month")
    params: dict[str, Any] = {"start": start, "end": end, "zone": zone, "interval": interval}
    scope = _scope(codes, params)
    rows = connection.execute(
        text(
            "WITH reported AS (SELECT date_trunc(:interval, reported_at AT TIME ZONE :zone) AS period, "
            f"count(*) FILTER (WHERE status <> 'merged') AS received FROM event "
            f"WHERE reported_at >= :start AND reported_at < :end{scope} "
            "GROUP BY 1), closed AS (SELECT date_trunc(:interval, closed_at AT TIME ZONE :zone) AS period, "
            "count(*) AS closed, count(*) FILTER (WHERE closed_at <= due_at) AS closed_on_time "
            "FROM event WHERE closed_at >= :start AND closed_at < :end AND reported_at < :end"
            f"{scope} GROUP BY 1), "
            "missed AS (SELECT date_trunc(:interval, due_at AT TIME ZONE :zone) AS period, count(*) AS overdue "
            "FROM event WHERE due_at >= :start AND due_at < :end AND due_at < now() "
            "AND reported_at < :end "
            f"AND status NOT IN {FINISHED_WITHOUT_HANDLING} AND (closed_at IS NULL OR closed_at > due_at)"
            f"{scope} GROUP BY 1) "
            "SELECT period, coalesce(r.received, 0) AS received, coalesce(c.closed, 0) AS closed, "
            "coalesce(c.closed_on_time, 0) AS closed_on_time, coalesce(m.overdue, 0) AS overdue "
            "FROM reported r FULL JOIN closed c USING (period) FULL JOIN missed m USING (period) "
            "ORDER BY period"
        ),
        params,
    ).mappings()
    return [dict(r) for r in rows]


def staff_names(connection: Connection, ids: list[int]) -> dict[int, str]:
    return dict(
        connection.execute(
            text("SELECT id, name FROM staff WHERE id = ANY(:ids)"), {"ids": ids}
        ).all()
    )


def unit_names(connection: Connection) -> dict[str, str]:
    return dict(connection.execute(text("SELECT code, name FROM handling_unit")).all())
