"""The warning sweep: open events whose warning has risen since it was last pushed.

The level is `api/workflow/warnings.py::warning`, on the working calendar of
`load_catalogue`; this module only decides which events are worth asking. Yellow means
used / total ≥ y, i.e. remaining ≤ k · used with k = (1 − y) / y (both in working hours), and
remaining depends only on the deadline, used only on the start. So for thresholds h₀ < h₁ < …:
an event can be yellow or red only if, for some i, its remaining time is at most hᵢ (its deadline
is before Dᵢ, the moment hᵢ working hours from now) and its used time is above hᵢ₋₁ / k (it
started before Sᵢ₋₁, the moment hᵢ₋₁ / k working hours ago). That staircase is one cheap SQL
predicate over the open events (api/db/outbox.py::warning_candidates); the exact answer is then
asked of `warning` for the few it lets through.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from api.db import outbox as rows
from api.settings import WorkflowSettings
from api.workflow.calendar import WorkCalendar
from api.workflow.machine import OPEN
from api.workflow.transitions import load_catalogue
from api.workflow.warnings import LEVELS, warning

log = logging.getLogger("wangge.outbox")

FIRST_STEP_HOURS = 0.25  # working hours
STEP_RATIO = 1.5  # each step 1.5× the last: a candidate is at most this far from yellow
STEPS = 24  # up to ≈ 2,800 working hours (a year); beyond, the last step's start bound alone
MARGIN = timedelta(seconds=1)  # the bounds err on the side of asking
FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)
MAX_WALK_DAYS = 3660  # as api/workflow/calendar.py


@dataclass(frozen=True)
class Staircase:
    due_before: list[datetime]
    start_before: list[datetime]


def _working_windows(calendar: WorkCalendar, day: date) -> list[tuple[datetime, datetime]]:
    if not calendar.is_workday(day):
        return []
    return [
        (datetime.combine(day, begin, calendar.zone), datetime.combine(day, end, calendar.zone))
        for begin, end in calendar.periods
    ]


def _forward(calendar: WorkCalendar, now: datetime, hours: list[float]) -> list[datetime]:
    """For each (ascending) amount: the first moment that many working hours after `now`."""
    answer: list[datetime] = []
    used = timedelta()
    local = now.astimezone(calendar.zone).date()
    for offset in range(MAX_WALK_DAYS):
        for begin, end in _working_windows(calendar, local + timedelta(days=offset)):
            begin = max(begin, now)
            if end <= begin:
                continue
            while len(answer) < len(hours) and used + (end - begin) >= timedelta(
                hours=hours[len(answer)]
            ):
                answer.append(begin + timedelta(hours=hours[len(answer)]) - used)
            used += end - begin
            if len(answer) == len(hours):
                return answer
    return answer + [FAR_FUTURE] * (len(hours) - len(answer))


def _backward(calendar: WorkCalendar, now: datetime, hours: list[float]) -> list[datetime]:
    """For each (ascending) amount: the last moment that many working hours before `now`."""
    answer: list[datetime] = []
    used = timedelta()
    local = now.astimezone(calendar.zone).date()
    earliest = now
    for offset in range(MAX_WALK_DAYS):
        for begin, end in reversed(_working_windows(calendar, local - timedelta(days=offset))):
            end = min(end, now)
            if end <= begin:
                continue
            while len(answer) < len(hours) and used + (end - begin) >= timedelta(
                hours=hours[len(answer)]
            ):
                answer.append(end - (timedelta(hours=hours[len(answer)]) - used))
            used += end - begin
            earliest = begin
            if len(answer) == len(hours):
                return answer
    # Further back than the walk goes: "started before the walk's start" is still a sound bound.
    return answer + [earliest] * (len(hours) - len(answer))


def staircase(calendar: WorkCalendar, now: datetime, yellow_share: float) -> Staircase:
    """The bounds of `warning_candidates` at `now` (see the module's docstring)."""
    k = (1 - yellow_share) / yellow_share
    steps = [FIRST_STEP_HOURS * STEP_RATIO**i for i in range(STEPS)]
    # Remaining time ≤ hᵢ means a deadline before the moment hᵢ and a second from now (not hᵢ:
    # from a Friday 17:30, every moment of the weekend is still hᵢ away).
    dues = _forward(calendar, now, [h + MARGIN.total_seconds() / 3600 for h in steps])
    # Used time above steps[i - 1] / k means a start before the moment that long ago.
    starts = [moment + MARGIN for moment in _backward(calendar, now, [h / k for h in steps])]
    # Step 0: remaining ≤ h₀ whatever the start; step i: remaining ≤ hᵢ, used > hᵢ₋₁ / k; and
    # a remaining above the last step needs a used time above it / k, whatever the deadline.
    return Staircase(
        due_before=[*dues, FAR_FUTURE],
        start_before=[FAR_FUTURE, *starts],
    )


def _payload(event: dict[str, Any], answer: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {
        "event_id": event["id"],
        "source": event["source"],
        "external_id": event["external_id"],
        "grid_code": event["grid_code"],
        "unit_code": event["unit_code"],
        "status": event["status"],
        **answer,
        "at": now.isoformat(),
    }


def sweep_warnings(
    engine: Engine, settings: WorkflowSettings, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Push each risen warning once: a `warning` notification and the event's `warning_level`,
    in one transaction. Returns the notifications' payloads."""
    now = now or datetime.now(UTC)
    with engine.begin() as connection:
        catalogue = load_catalogue(connection, settings)
        bounds = staircase(catalogue.calendar, now, settings.yellow_share)
        candidates = rows.warning_candidates(
            connection,
            sorted(state.value for state in OPEN),
            now,
            bounds.due_before,
            bounds.start_before,
        )
        risen, payloads = [], {}
        for event in candidates:
            answer = warning(event, catalogue.calendar, now, settings.yellow_share)
            level = LEVELS[answer["level"]] if answer else 0
            if level > event["warning_level"]:
                risen.append({"id": event["id"], "version": event["version"], "level": level})
                payloads[event["id"]] = _payload(event, answer or {}, now)
        raised = rows.raise_warnings(connection, risen, payloads)
    if raised:
        log.info("warnings pushed: %d (of %d candidates)", len(raised), len(candidates))
    return [payloads[i] for i in raised]
