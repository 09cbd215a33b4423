"""Rows of notifications out: delivery bookkeeping per webhook target, and warnings raised.

`outbox` holds what happened (written with the change, api/db/workflow.py::enqueue);
`outbox_delivery` holds, per (notification, target), how many attempts were made, when the next
is due, and whether it arrived. A claimed row's `next_attempt_at` is its lease: the time after
which another worker may try again if this one never reports back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, text

# A notification is matched to the targets when it is first seen; rows this young are re-examined
# every round, so one committed late (its transaction took a while) is still found. A transaction
# that stays open longer than this after writing its notification is the one case not covered.
LOOKBACK_SECONDS = 900


def seed_deliveries(connection: Connection, targets: list[str]) -> int:
    """Delivery rows for notifications that lack them; returns how many were created.

    A target gets a notification if the notification is new to every target (nobody has seen it
    yet), or if the target already has an earlier notification of the look-back window. So a
    target added to the configuration starts from its addition (less the look-back), not from
    the beginning of time, and a notification committed late is still delivered to all.
    """
    if not targets:
        return 0
    floor = connection.execute(
        text(
            "SELECT id FROM outbox WHERE created_at < now() - make_interval(secs => :lookback) "
            "ORDER BY id DESC LIMIT 1"
        ),
        {"lookback": LOOKBACK_SECONDS},
    ).scalar()
    floor = floor or 0
    firsts = [
        connection.execute(
            text(
                "SELECT min(outbox_id) FROM outbox_delivery "
                "WHERE target = :target AND outbox_id > :floor"
            ),
            {"target": target, "floor": floor},
        ).scalar()
        for target in targets
    ]
    return connection.execute(
        text(
            "INSERT INTO outbox_delivery (outbox_id, target, next_attempt_at) "
            "SELECT o.id, t.name, now() FROM outbox o "
            "CROSS JOIN unnest(CAST(:targets AS text[]), CAST(:firsts AS bigint[])) AS t(name, first_id) "
            "WHERE o.id > :floor "
            "AND NOT EXISTS (SELECT 1 FROM outbox_delivery d "
            "                WHERE d.outbox_id = o.id AND d.target = t.name) "
            "AND (o.id > t.first_id "
            "     OR NOT EXISTS (SELECT 1 FROM outbox_delivery d WHERE d.outbox_id = o.id)) "
            "ORDER BY o.id ON CONFLICT DO NOTHING"
        ),
        {"targets": targets, "firsts": firsts, "floor": floor},
    ).rowcount


def claim_due(
    connection: Connection, targets: list[str], batch: int, lease_seconds: float
) -> list[dict[str, Any]]:
    """Lease up to `batch` due deliveries (counted as an attempt) for this worker.

    Rows locked by another worker are skipped, and a leased row is not due again until its lease
    ends. Per event and target only the oldest undelivered notification is eligible, so a
    receiver sees an event's notifications in the order they were written.
    """
    if not targets:
        return []
    rows = connection.execute(
        text(
            "WITH heads AS ("
            "  SELECT DISTINCT ON (d.target, o.event_id) d.outbox_id, d.target "
            "  FROM outbox_delivery d JOIN outbox o ON o.id = d.outbox_id "
            "  WHERE d.delivered_at IS NULL AND d.target = ANY(:targets) "
            "  AND o.event_id IS NOT NULL "
            "  ORDER BY d.target, o.event_id, d.outbox_id"
            "), due AS ("
            "  SELECT d.outbox_id, d.target FROM outbox_delivery d "
            "  JOIN outbox o ON o.id = d.outbox_id "
            "  WHERE d.delivered_at IS NULL AND d.next_attempt_at <= now() "
            "  AND d.target = ANY(:targets) "
            "  AND (o.event_id IS NULL OR (d.outbox_id, d.target) IN (SELECT * FROM heads)) "
            "  ORDER BY d.next_attempt_at, d.outbox_id LIMIT :batch "
            "  FOR UPDATE OF d SKIP LOCKED"
            ") "
            "UPDATE outbox_delivery d SET attempts = d.attempts + 1, "
            "next_attempt_at = now() + make_interval(secs => :lease) "
            "FROM due JOIN outbox o ON o.id = due.outbox_id "
            "WHERE d.outbox_id = due.outbox_id AND d.target = due.target "
            "RETURNING d.outbox_id, d.target, d.attempts, d.next_attempt_at AS lease_until, "
            "o.event_id, o.kind, o.payload, o.created_at"
        ),
        {"targets": targets, "batch": batch, "lease": lease_seconds},
    ).mappings()
    return sorted((dict(r) for r in rows), key=lambda r: r["outbox_id"])


def mark_delivered(connection: Connection, outbox_id: int, target: str) -> None:
    """Delivered, whoever's lease it was: the receiver has it."""
    connection.execute(
        text(
            "UPDATE outbox_delivery SET delivered_at = now(), last_error = NULL "
            "WHERE outbox_id = :id AND target = :target AND delivered_at IS NULL"
        ),
        {"id": outbox_id, "target": target},
    )


def mark_failed(
    connection: Connection,
    outbox_id: int,
    target: str,
    lease_until: datetime,
    retry_in_seconds: float,
    error: str,
) -> bool:
    """The next attempt after a failure, unless the lease was lost to another worker meanwhile."""
    return bool(
        connection.execute(
            text(
                "UPDATE outbox_delivery SET last_error = :error, "
                "next_attempt_at = now() + make_interval(secs => :delay) "
                "WHERE outbox_id = :id AND target = :target AND delivered_at IS NULL "
                "AND next_attempt_at = :lease_until"
            ),
            {
                "id": outbox_id,
                "target": target,
                "lease_until": lease_until,
                "delay": retry_in_seconds,
                "error": error[:1000],
            },
        ).rowcount
    )


def release(
    connection: Connection, outbox_id: int, target: str, lease_until: datetime, retry_at: datetime
) -> None:
    """Give a claimed row back unsent (its target just failed): not counted as an attempt."""
    connection.execute(
        text(
            "UPDATE outbox_delivery SET attempts = attempts - 1, next_attempt_at = :retry_at "
            "WHERE outbox_id = :id AND target = :target AND delivered_at IS NULL "
            "AND next_attempt_at = :lease_until"
        ),
        {"id": outbox_id, "target": target, "lease_until": lease_until, "retry_at": retry_at},
    )


def delivery_status(connection: Connection, *, pending_only: bool) -> list[dict[str, Any]]:
    """Per target: pending, failing (pending after a failed attempt), oldest pending, next due;
    with `pending_only=False` also the delivered total (a full count)."""
    pending = connection.execute(
        text(
            "SELECT target, count(*) AS pending, count(*) FILTER (WHERE attempts > 0) AS failing, "
            "min(o.created_at) AS oldest_pending_at, min(d.next_attempt_at) AS next_attempt_at, "
            "max(d.attempts) AS max_attempts "
            "FROM outbox_delivery d JOIN outbox o ON o.id = d.outbox_id "
            "WHERE d.delivered_at IS NULL GROUP BY target ORDER BY target"
        )
    ).mappings()
    answer = {r["target"]: {**dict(r), "delivered": None} for r in pending}
    if not pending_only:
        for target, delivered, last in connection.execute(
            text(
                "SELECT target, count(*), max(delivered_at) FROM outbox_delivery "
                "WHERE delivered_at IS NOT NULL GROUP BY target"
            )
        ).all():
            row = answer.setdefault(
                target,
                {
                    "target": target,
                    "pending": 0,
                    "failing": 0,
                    "oldest_pending_at": None,
                    "next_attempt_at": None,
                    "max_attempts": 0,
                },
            )
            row["delivered"] = delivered
            row["last_delivered_at"] = last
    return [answer[name] for name in sorted(answer)]


def pending_deliveries(
    connection: Connection, limit: int, *, failing_only: bool = False
) -> list[dict[str, Any]]:
    """Undelivered rows, oldest notification first (the failing ones carry their last error)."""
    clause = " AND d.attempts > 0" if failing_only else ""
    rows = connection.execute(
        text(
            "SELECT d.outbox_id, d.target, o.kind, o.event_id, o.created_at, d.attempts, "
            "d.next_attempt_at, d.last_error FROM outbox_delivery d "
            f"JOIN outbox o ON o.id = d.outbox_id WHERE d.delivered_at IS NULL{clause} "
            "ORDER BY d.outbox_id, d.target LIMIT :limit"
        ),
        {"limit": limit},
    ).mappings()
    return [dict(r) for r in rows]


def outbox_totals(connection: Connection) -> dict[str, Any]:
    """The newest notification (cheap: the end of the primary key)."""
    latest = connection.execute(
        text("SELECT id, created_at FROM outbox ORDER BY id DESC LIMIT 1")
    ).first()
    return {
        "latest_id": latest[0] if latest else None,
        "latest_at": latest[1] if latest else None,
    }


# Warnings -----------------------------------------------------------------------------------

_CLOCK = (
    "CASE WHEN status = 'reported' THEN accept_due_at ELSE due_at END",
    "CASE WHEN status = 'reported' THEN COALESCE(received_at, reported_at) ELSE accepted_at END",
)


def warning_candidates(
    connection: Connection,
    open_states: list[str],
    now: datetime,
    due_before: list[datetime],
    start_before: list[datetime],
) -> list[dict[str, Any]]:
    """Open events whose warning may have risen: overdue ones not yet red, and unwarned ones
    inside the staircase (clock due before `due_before[i]` and started before `start_before[i]`
    for some i; api/outbox/sweep.py derives the steps from the working calendar)."""
    due, start = _CLOCK
    rows = connection.execute(
        text(
            "SELECT id, status, version, warning_level, source, external_id, grid_code, "
            "unit_code, reported_at, received_at, accept_due_at, accepted_at, due_at FROM ("
            f"  SELECT e.*, {due} AS clock_due, {start} AS clock_start FROM event e "
            "  WHERE status = ANY(:states) AND warning_level < 2"
            ") e WHERE clock_due IS NOT NULL AND clock_start IS NOT NULL AND ("
            "  clock_due < :now OR (warning_level = 0 AND EXISTS ("
            "    SELECT 1 FROM unnest(CAST(:dues AS timestamptz[]), "
            "                         CAST(:starts AS timestamptz[])) AS s(due_before, start_before) "
            "    WHERE e.clock_due < s.due_before AND e.clock_start < s.start_before)))"
            " ORDER BY id"
        ),
        {"states": open_states, "now": now, "dues": due_before, "starts": start_before},
    ).mappings()
    return [dict(r) for r in rows]


def raise_warnings(
    connection: Connection, risen: list[dict[str, Any]], payloads: dict[int, dict[str, Any]]
) -> list[int]:
    """Raise `warning_level` and write one `warning` notification per event, in the caller's
    transaction. An event that changed since it was read (another version), that is locked by
    a transition or another sweeper right now, or whose level is already this high is skipped:
    the next sweep looks again. Returns the events raised."""
    if not risen:
        return []
    wanted = {r["id"]: r for r in risen}
    locked = connection.execute(
        text("SELECT id FROM event WHERE id = ANY(:ids) ORDER BY id FOR UPDATE SKIP LOCKED"),
        {"ids": list(wanted)},
    ).scalars()
    ids = [i for i in locked]
    if not ids:
        return []
    raised = list(
        connection.execute(
            text(
                "UPDATE event e SET warning_level = r.level "
                "FROM unnest(CAST(:ids AS bigint[]), CAST(:levels AS int[]), "
                "            CAST(:versions AS int[])) AS r(id, level, version) "
                "WHERE e.id = r.id AND e.version = r.version AND e.warning_level < r.level "
                "RETURNING e.id"
            ),
            {
                "ids": ids,
                "levels": [wanted[i]["level"] for i in ids],
                "versions": [wanted[i]["version"] for i in ids],
            },
        ).scalars()
    )
    raised.sort()
    if raised:
        connection.execute(
            text(
                "INSERT INTO outbox (event_id, kind, payload) "
                "SELECT r.id, 'warning', r.payload FROM unnest(CAST(:ids AS bigint[]), "
                "CAST(:payloads AS jsonb[])) AS r(id, payload) ORDER BY r.id"
            ),
            {"ids": raised, "payloads": [orjson.dumps(payloads[i]).decode() for i in raised]},
        )
    return raised
