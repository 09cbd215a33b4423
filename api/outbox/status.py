"""What the outbox is doing: per target, pending and failing deliveries and the last errors."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from api.db import outbox as rows
from api.settings import WorkflowSettings


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def outbox_status(
    connection: Connection, settings: WorkflowSettings, *, pending: bool, limit: int
) -> dict[str, Any]:
    """Counts per target (the configured ones, and any left from an older configuration),
    the oldest pending notification, and up to `limit` failing deliveries with their errors;
    with `pending`, the delivered totals (a full count) are left out and the pending rows
    themselves are listed instead."""
    configured = {target.name: target.url for target in settings.webhooks}
    counts = {row["target"]: row for row in rows.delivery_status(connection, pending_only=pending)}
    targets = []
    for name in sorted(set(configured) | set(counts)):
        row = counts.get(name, {})
        entry: dict[str, Any] = {
            "name": name,
            "configured": name in configured,
            "url": configured.get(name),
            "pending": row.get("pending", 0),
            "failing": row.get("failing", 0),
            "max_attempts": row.get("max_attempts", 0),
            "oldest_pending_at": _time(row.get("oldest_pending_at")),
            "next_attempt_at": _time(row.get("next_attempt_at")),
        }
        if not pending:
            entry["delivered"] = row.get("delivered") or 0
            entry["last_delivered_at"] = _time(row.get("last_delivered_at"))
        targets.append(entry)
    latest = rows.outbox_totals(connection)
    answer: dict[str, Any] = {
        "targets": targets,
        "latest_notification": {"id": latest["latest_id"], "at": _time(latest["latest_at"])},
        "sweep_seconds": settings.sweep_seconds,
        "last_errors": [
            _listed(r) for r in rows.pending_deliveries(connection, limit, failing_only=True)
        ],
    }
    if pending:
        answer["pending"] = [_listed(r) for r in rows.pending_deliveries(connection, limit)]
    return answer


def _listed(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "outbox_id": row["outbox_id"],
        "target": row["target"],
        "kind": row["kind"],
        "event_id": row["event_id"],
        "created_at": _time(row["created_at"]),
        "attempts": row["attempts"],
        "next_attempt_at": _time(row["next_attempt_at"]),
        "last_error": row["last_error"],
    }
