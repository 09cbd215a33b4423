"""Overdue warnings (逾期预警), computed on read from the working calendar at any moment.

An open event runs against one clock at a time: before it is accepted (立案), the time to accept
(reported_at → accept_due_at); after, the time to handle (accepted_at → due_at, moved by an
approved postponement or an escalation). Yellow (黄色预警) once `yellow_share` of that clock's
working time is used, red (红色预警) once the deadline has passed. Working time only: a deadline
on Monday morning is not 80 % used on Sunday.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from api.workflow.calendar import WorkCalendar
from api.workflow.machine import FINISHED, State

LEVELS = {None: 0, "yellow": 1, "red": 2}
LABELS_ZH = {"yellow": "黄色预警", "red": "红色预警（已逾期）"}


def warning(
    event: dict[str, Any], calendar: WorkCalendar, now: datetime, yellow_share: float
) -> dict[str, Any] | None:
    """The event's warning now: level (yellow, red or None), which clock, share used."""
    state = State(event["status"])
    if state in FINISHED:
        return None
    if state == State.reported:  # the time to accept runs from arrival, as intake set it
        clock, start, due = (
            "accept",
            event.get("received_at") or event.get("reported_at"),
            event.get("accept_due_at"),
        )
    else:
        clock, start, due = "handle", event.get("accepted_at"), event.get("due_at")
    if start is None or due is None:
        return None
    total = calendar.hours_between(start, due)
    used = calendar.hours_between(start, now)
    share = used / total if total > 0 else (1.0 if now >= due else 0.0)
    level = "red" if now > due else "yellow" if share >= yellow_share else None
    answer: dict[str, Any] = {
        "level": level,
        "clock": clock,
        "due_at": due.isoformat(),
        "share_used": round(min(share, 99.0), 3),
        "working_hours_left": round(max(total - used, 0.0), 2),
    }
    if level == "red":
        answer["overdue_working_hours"] = round(calendar.hours_between(due, now), 2)
    if level:
        answer["label_zh"] = LABELS_ZH[level]
    return answer
