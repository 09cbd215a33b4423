"""Reading events: an event as a caller may see it (state, deadlines, warning now, allowed actions,
the rules' proposal, history, supervision orders, photos), and pages of events for maps and queues.
What is personal is decided by api/privacy.py."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from api.auth import Role
from api.db import attachments as attachment_rows
from api.db import events as event_rows
from api.db import workflow as workflow_rows
from api.db.filters import Page
from api.db.geojson import collection
from api.errors import NotFound
from api.lookup.geocoding import geocode_summary
from api.lookup.index_store import IndexStore
from api.lookup.service import staff_on_duty
from api.privacy import Caller, public_actor
from api.settings import WorkflowSettings
from api.workflow.calendar import WorkCalendar
from api.workflow.effects import grid_worker
from api.workflow.machine import ACTION_LABELS, LABELS_ZH, State, allowed_actions
from api.workflow.rules import Catalogue
from api.workflow.transitions import in_scope, load_catalogue
from api.workflow.warnings import warning

# States from which an event is still to be dispatched (again): answers carry the rules' proposal.
PROPOSING = frozenset({State.reported, State.accepted, State.returned, State.dispatched})


@dataclass(frozen=True)
class Clock:
    """What warnings and proposals are computed against: the rules and working calendar, the
    settings, the moment."""

    catalogue: Catalogue
    settings: WorkflowSettings
    now: datetime

    @property
    def calendar(self) -> WorkCalendar:
        return self.catalogue.calendar


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def event_answer(
    row: dict[str, Any],
    store: IndexStore,
    caller: Caller,
    placement: dict[str, Any] | None = None,
    *,
    clock: Clock | None = None,
) -> dict[str, Any]:
    """An event as this caller may see it (api/privacy.py decides what is personal)."""
    state = State(row["status"])
    body: dict[str, Any] = {
        "id": row["id"],
        "source": row["source"],
        "external_id": row["external_id"],
        "category_code": row["category_code"],
        "status": row["status"],
        "status_label": LABELS_ZH[state],
        "version": row["version"],
        "raw": {"x": row["raw_x"], "y": row["raw_y"], "crs": row["raw_crs"]},
        "lon": row["lon"],
        "lat": row["lat"],
        "grid_code": row["grid_code"],
        "generation": row["generation_id"],
        "tier": row["tier"],
        "unit_code": row["unit_code"],
        "assignee_id": row["assignee_id"],
        "reported_at": _time(row["reported_at"]),
        "received_at": _time(row["received_at"]),
        "accept_due_at": _time(row["accept_due_at"]),
        "responded_at": _time(row["responded_at"]),
        "accepted_at": _time(row["accepted_at"]),
        "dispatched_at": _time(row["dispatched_at"]),
        "handled_at": _time(row["handled_at"]),
        "due_at": _time(row["due_at"]),
        "closed_at": _time(row["closed_at"]),
        "postponement_requested_until": _time(row["postpone_requested_until"]),
        "postpone_count": row["postpone_count"],
        "rework_count": row["rework_count"],
        "return_count": row["return_count"],
        "escalation_count": row["escalation_count"],
        "handling_hours": row["handling_hours"],
        "satisfaction": row["satisfaction"],
        "merged_into": row["merged_into"],
        "duplicate_candidates": row["duplicate_candidates"] or [],
    }
    if clock is not None:
        body["warning"] = warning(row, clock.calendar, clock.now, clock.settings.yellow_share)
        if state in PROPOSING:  # what 立案 and 派遣 would propose, as the rules stand
            tier = row["tier"] or clock.catalogue.tier_for(row["category_code"])
            path = store.active_path(row["grid_code"])
            unit = clock.catalogue.unit_for(row["category_code"], tier, path)
            body["proposal"] = {
                "tier": tier,
                "unit_code": unit["code"] if unit else None,
                "assignee_id": grid_worker(store, path) if tier == 3 else None,
            }
    if caller.principal is not None:
        # Only what this caller could actually do: nothing on an event outside their scope.
        mine = in_scope(row, caller.principal, store)
        body["allowed_actions"] = allowed_actions(state, caller.principal.role) if mine else []
    if placement is not None:
        body["assignment"] = {
            "matched": bool(row["grid_code"]),
            "path": (placement or {}).get("path") or [],
            "on_boundary": placement.get("on_boundary"),
            "runner_up": placement.get("runner_up"),
            "confidence": placement.get("confidence"),
            "candidates": placement.get("candidates"),
            "nearest": placement.get("nearest"),
            "needs_manual_dispatch": not row["grid_code"],
            "geocode": geocode_summary(placement),
        }
    # The caller's scope is judged on today's grids, whatever generation placed the event.
    scope = store.active_path(row["grid_code"])
    if caller.sees_event(scope, row["unit_code"]):
        body["description"] = row["description"]
        body["address"] = row["address"]
        body["reporter"] = {"name": row["reporter_name"], "phone": row["reporter_phone"]}
    visible = caller.personal_codes(scope)
    if visible:
        body["staff"] = staff_on_duty(store, visible)
    return body


def event_collection(
    connection: Connection,
    chosen: event_rows.EventFilter,
    clock: Clock,
    *,
    warnings: tuple[str, ...] = (),
    bbox: Any = None,
    page: Page,
) -> dict[str, Any]:
    """Events as a GeoJSON page, each with its warning now. A warning filter is applied after the
    working-time computation, so it reads the open events in full (they are few) and pages here."""
    if not warnings:
        rows = event_rows.event_rows(
            connection, chosen, bbox=bbox, limit=page.limit, offset=page.offset
        )
        has_more = len(rows) > page.limit
        rows = rows[: page.limit]
    else:
        rows = event_rows.event_rows(connection, chosen, bbox=bbox, limit=OPEN_READ_CAP, offset=0)
        rows = [r for r in rows if (_warning(r, clock) or {}).get("level") in warnings]
        has_more = len(rows) > page.offset + page.limit
        rows = rows[page.offset : page.offset + page.limit]
    features = [
        event_rows.event_feature(r, LABELS_ZH[State(r["status"])], _warning(r, clock)) for r in rows
    ]
    return collection(features, page, has_more)


OPEN_READ_CAP = 100_000  # open events a warning filter reads at most (a district has thousands)


def _warning(row: dict[str, Any], clock: Clock) -> dict[str, Any] | None:
    return warning(row, clock.calendar, clock.now, clock.settings.yellow_share)


def event_record(
    connection: Connection,
    store: IndexStore,
    settings: WorkflowSettings,
    caller: Caller,
    event_id: int,
) -> dict[str, Any]:
    """One event as this caller may see it, with its grid path, warning now, history and
    supervision orders (notes, actors, positions and reasons only where entitled)."""
    row = event_rows.find_event(connection, event_id=event_id)
    if row is None:
        raise NotFound(
            f"没有编号为 {event_id} 的事件", code="event_not_found", where="path.event_id"
        )
    placement = None
    if row["grid_code"] and row["generation_id"]:
        index = store.generation(row["generation_id"])
        position = index.by_code.get(row["grid_code"])
        if position is not None:
            path = [
                {"level": r.level, "code": r.code, "name": r.name} for r in index.path(position)
            ]
            placement = {"path": path}
    lines = event_rows.history(connection, event_id)
    # An event placed by its address keeps how (precision, place, grid shares) in its report line.
    placed_by = next(
        (line["details"]["geocode"] for line in lines if (line["details"] or {}).get("geocode")),
        None,
    )
    if placed_by is not None:
        placement = {**(placement or {}), **placed_by}
    catalogue = load_catalogue(connection, settings)
    body = event_answer(
        row, store, caller, placement, clock=Clock(catalogue, settings, datetime.now(UTC))
    )
    personal = caller.sees_event(store.active_path(row["grid_code"]), row["unit_code"])
    body["history"] = [
        {
            "at": line["at"].isoformat(),
            "action": line["action"],
            "action_label": ACTION_LABELS.get(line["action"] or "", line["action"]),
            "from": line["from_status"],
            "status": line["status"],
            "version": line["version"],
            "actor": public_actor(line["actor"], caller) if personal else None,
            "note": line["note"] if personal else None,
            "lon": line["lon"] if personal else None,
            "lat": line["lat"] if personal else None,
            "details": line["details"],
        }
        for line in lines
    ]
    body["supervisions"] = [
        {
            "id": order["id"],
            "reason": order["reason"] if personal else None,
            "due_at": _time(order["due_at"]),
            "issued_at": order["issued_at"].isoformat(),
            "issued_by": public_actor(order["issued_by"], caller) if personal else None,
        }
        for order in workflow_rows.supervisions(connection, event_id)
    ]
    if personal:  # photos show faces, plates, homes: personal data of the event
        body["photos"] = [
            {
                "id": photo["id"],
                "stage": photo["stage"],
                "url": f"/api/v1/attachments/{photo['id']}",
                "thumbnail_url": f"/api/v1/attachments/{photo['id']}/thumbnail",
            }
            for photo in attachment_rows.event_attachments(connection, event_id)
        ]
    return body


# What a field worker or a handler works on: dispatched to them, being handled, waiting for
# verification, or sent back.
TASK_STATES = ("dispatched", "processing", "handled", "returned")


def my_tasks(
    connection: Connection, store: IndexStore, settings: WorkflowSettings, caller: Caller
) -> dict[str, Any]:
    """My tasks (我的任务), soonest deadline first: a field worker's grids (today's, and below
    them) or events assigned to them; a handler's unit; anyone else's open queue."""
    principal = caller.principal
    assert principal is not None
    chosen = event_rows.EventFilter(
        open_only=True, states=TASK_STATES, sort="deadline", with_unplaced=True
    )
    if principal.role == Role.field_staff:
        codes = [code for grid in principal.grid_codes for code in store.descendants(grid)]
        chosen = replace(chosen, grid_codes=tuple(codes), or_assignee=principal.staff_id)
    elif principal.role == Role.handler:
        chosen = replace(chosen, unit=principal.unit_code or "")
    rows = event_rows.event_rows(connection, chosen, limit=OPEN_READ_CAP)
    catalogue = load_catalogue(connection, settings)
    clock = Clock(catalogue, settings, datetime.now(UTC))
    tasks = []
    counts: dict[str, int] = {"total": 0, "yellow": 0, "red": 0, "supervised": 0}
    for row in rows:
        alert = _warning(row, clock)
        level = alert["level"] if alert else None
        scope = store.active_path(row["grid_code"])
        task = {
            "id": row["id"],
            "category_code": row["category_code"],
            "status": row["status"],
            "status_label": LABELS_ZH[State(row["status"])],
            "version": row["version"],
            "grid_code": row["grid_code"],
            "unit_code": row["unit_code"],
            "lon": row["lon"],
            "lat": row["lat"],
            "due_at": _time(row["due_at"]),
            "warning": alert,
            "supervised": row["supervised"],
            "assigned_to_me": row["assignee_id"] is not None
            and row["assignee_id"] == principal.staff_id,
            "allowed_actions": allowed_actions(State(row["status"]), principal.role)
            if in_scope(row, principal, store)
            else [],
        }
        if caller.sees_event(scope, row["unit_code"]):
            task["description"] = row["description"]
        tasks.append(task)
        counts["total"] += 1
        counts[row["status"]] = counts.get(row["status"], 0) + 1
        if level:
            counts[level] += 1
        if row["supervised"]:
            counts["supervised"] += 1
    return {"counts": counts, "tasks": tasks}
