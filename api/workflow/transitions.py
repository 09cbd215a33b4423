"""One transition of an event through the loop: checked, applied, recorded, announced.

Checks run in this order, and nothing is written unless all pass: the event exists (404), the
caller's version is current (409 stale_version), the action is possible from the event's state
(409 illegal_transition, listing what the caller may do instead), the caller's role may take it
and the event is in the caller's scope (403), and the action has what it needs (422). Then, in
one transaction: the event's columns, a history line that is never rewritten (who, when, what,
where, note, details such as an overridden proposal), and an outbox notification.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from pydantic import BaseModel, Field, model_validator
from sqlalchemy import Connection, Engine

from api.auth import Principal, Role
from api.db import workflow as rows
from api.errors import Conflict, Forbidden, InvalidInput, NotFound
from api.lookup.index_store import IndexStore
from api.lookup.service import staff_on_duty
from api.settings import WorkflowSettings
from api.times import Instant
from api.workflow.calendar import WorkCalendar, parse_periods
from api.workflow.machine import ACTIONS, LABELS_ZH, OPEN, Action, State, allowed_actions
from api.workflow.rules import Catalogue
from spatial.crs import coordinate_problems, normalise_crs, to_wgs84_xy

TIER_NAMES = {3: "社区", 2: "街道", 1: "区级部门"}


class TransitionIn(BaseModel):
    action: str = Field(max_length=32, description="One of the actions in GET /events/{id}")
    version: int = Field(ge=1, description="The event's version as last read (optimistic lock)")
    note: str | None = Field(default=None, max_length=4000)
    unit: str | None = Field(default=None, max_length=32, description="dispatch: handling unit")
    assignee: int | None = Field(default=None, ge=1, description="dispatch: staff id")
    deadline: Instant | None = Field(
        default=None, description="accept/dispatch/escalate: override; postpone: the new one"
    )
    photos: list[int] = Field(
        default_factory=list, max_length=20, description="handle: attachment ids of this event"
    )
    lon: float | None = None
    lat: float | None = None
    crs: str | None = Field(default=None, max_length=32)
    category_code: str | None = Field(default=None, max_length=16, description="accept")
    tier: int | None = Field(default=None, ge=1, le=3, description="accept/escalate: 3, 2, 1")
    target: int | None = Field(default=None, ge=1, description="merge: the original event")
    satisfaction: int | None = Field(default=None, ge=1, le=5, description="evaluate: 1–5")

    @model_validator(mode="after")
    def _position(self) -> TransitionIn:
        given = [v is not None for v in (self.lon, self.lat)]
        if any(given) and not (all(given) and self.crs):
            raise ValueError("lon、lat 与 crs 需同时给出")
        return self


def load_catalogue(connection: Connection, settings: WorkflowSettings) -> Catalogue:
    calendar = WorkCalendar(
        exceptions=rows.calendar_exceptions(connection),
        periods=parse_periods(settings.work_periods),
    )
    return Catalogue(
        rules=rows.dispatch_rules(connection),
        units=rows.handling_units(connection),
        category_tiers=rows.category_tiers(connection),
        calendar=calendar,
    )


def _position(body: TransitionIn) -> tuple[float | None, float | None]:
    if body.lon is None or body.lat is None or body.crs is None:
        return None, None
    spec = normalise_crs(body.crs)
    x, y = np.array([body.lon]), np.array([body.lat])
    [problem] = coordinate_problems(x, y, spec)
    if problem:
        raise InvalidInput(problem, code="invalid_coordinates", where="body.lon,lat")
    lon, lat = to_wgs84_xy(x, y, spec)
    return float(lon[0]), float(lat[0])


def _in_scope(event: dict[str, Any], principal: Principal, store: IndexStore) -> bool:
    """Field staff act on events in their grids; handlers on events dispatched to their unit."""
    if principal.role == Role.field_staff:
        path = store.active_path(event["grid_code"])
        return any(code in principal.grid_codes for code in path)
    if principal.role == Role.handler:
        return event["unit_code"] is not None and event["unit_code"] == principal.unit_code
    return True


def _need(body: TransitionIn, action: Action) -> None:
    for name in action.needs:
        if getattr(body, name) in (None, "", []):
            raise InvalidInput(
                f"「{action.label_zh}」需要填写 {name}", code="missing_field", where=f"body.{name}"
            )


def _future(deadline: datetime | None, now: datetime, where: str = "body.deadline") -> None:
    if deadline is not None and deadline <= now:
        raise InvalidInput("期限不能早于当前时间", code="deadline_in_past", where=where)


def apply_transition(
    engine: Engine,
    store: IndexStore,
    settings: WorkflowSettings,
    event_id: int,
    body: TransitionIn,
    principal: Principal,
    *,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Apply one transition; returns {event_id, action, from, status, version}."""
    action = ACTIONS.get(body.action)
    if action is None:
        raise InvalidInput(
            f"未知操作 {body.action}",
            code="unknown_action",
            where="body.action",
            details=[{"actions": list(ACTIONS)}],
        )
    now = now or datetime.now(UTC)
    lon, lat = _position(body)
    with engine.begin() as connection:
        event = rows.lock_event(connection, event_id)
        if event is None:
            raise NotFound(
                f"没有编号为 {event_id} 的事件", code="event_not_found", where="path.event_id"
            )
        if body.version != event["version"]:
            raise Conflict(
                f"事件已被他人更新（当前版本 {event['version']}，提交的是 {body.version}），请刷新后重试",
                code="stale_version",
                where="body.version",
                details=[{"version": event["version"], "status": event["status"]}],
            )
        state = State(event["status"])
        if state not in action.sources:
            allowed = allowed_actions(state, principal.role)
            raise Conflict(
                f"事件当前为「{LABELS_ZH[state]}」，不能执行「{action.label_zh}」"
                + (f"；可执行：{'、'.join(allowed)}" if allowed else "；您的角色当前无可执行操作"),
                code="illegal_transition",
                where="body.action",
                details=[{"status": state.value, "allowed": allowed}],
            )
        if principal.role not in action.roles:
            raise Forbidden(
                f"角色 {principal.role.value} 不能执行「{action.label_zh}」（可执行角色："
                f"{'、'.join(sorted(r.value for r in action.roles))}）",
                code="insufficient_role",
                where="body.action",
            )
        if not _in_scope(event, principal, store):
            raise Forbidden(
                "该事件不在您的网格或处置单位范围内", code="out_of_scope", where="path.event_id"
            )
        _need(body, action)
        catalogue = load_catalogue(connection, settings)
        step = Step(connection, store, catalogue, event, body, now, principal.actor)
        changes, details = _EFFECTS[action.name](step)
        target = action.target or state
        if action.target is not None:
            changes["status"] = target.value
        if state == State.reported and event["responded_at"] is None:
            changes["responded_at"] = now  # the first decision on a report: 响应
        version = rows.update_event(connection, event_id, changes)
        rows.add_history(
            connection,
            event_id=event_id,
            action=action.name,
            from_status=state.value,
            status=target.value,
            actor=principal.actor,
            note=body.note,
            version=version,
            lon=lon,
            lat=lat,
            details=details,
            at=now,
        )
        announcement = {
            "event_id": event_id,
            "source": event["source"],
            "external_id": event["external_id"],
            "action": action.name,
            "from": state.value,
            "status": target.value,
            "version": version,
            "at": now.isoformat(),
        }
        rows.enqueue(connection, "transition", event_id, announcement)
    return {
        "event_id": event_id,
        "action": action.name,
        "from": state.value,
        "status": target.value,
        "version": version,
        "details": details,
    }


@dataclass(frozen=True)
class Step:
    """What an action's effect may look at: the locked event, the request, the rules, the clock."""

    connection: Connection
    store: IndexStore
    catalogue: Catalogue
    event: dict[str, Any]
    body: TransitionIn
    now: datetime
    actor: str


Effects = tuple[dict[str, Any], dict[str, Any]]


def _accept(step: Step) -> Effects:
    category = step.body.category_code or step.event["category_code"]
    if category is not None and category not in step.catalogue.category_tiers:
        raise InvalidInput(
            f"未知事件类别 {category}", code="unknown_category", where="body.category_code"
        )
    proposed = step.catalogue.tier_for(category)
    tier = step.body.tier or proposed
    _future(step.body.deadline, step.now)
    due = step.body.deadline or step.catalogue.handle_deadline(step.now, category, tier)
    details = {"tier": tier, "proposed_tier": proposed, "due_at": due.isoformat()}
    if step.body.deadline is not None:
        details["deadline_override"] = True
    return {
        "category_code": category,
        "tier": tier,
        "accepted_at": step.now,
        "due_at": due,
    }, details


def _dispatch(step: Step) -> Effects:
    tier = step.event["tier"] or step.catalogue.tier_for(step.event["category_code"])
    path = step.store.active_path(step.event["grid_code"])
    proposal = step.catalogue.unit_for(step.event["category_code"], tier, path)
    unit_code = step.body.unit or (proposal["code"] if proposal else None)
    if step.body.unit is not None and step.catalogue.unit(step.body.unit) is None:
        raise InvalidInput(f"未知处置单位 {step.body.unit}", code="unknown_unit", where="body.unit")
    assignee = step.body.assignee
    if assignee is not None and not rows.staff_exists(step.connection, assignee):
        raise InvalidInput(
            f"没有编号为 {assignee} 的在岗人员", code="unknown_staff", where="body.assignee"
        )
    proposed_assignee = _grid_worker(step.store, path) if tier == 3 else None
    if assignee is None:
        assignee = proposed_assignee
    if unit_code is None and assignee is None:
        raise InvalidInput(
            f"没有可派遣的{TIER_NAMES[tier]}处置单位或网格员，请指定 unit 或 assignee",
            code="no_handler",
            where="body.unit",
        )
    _future(step.body.deadline, step.now)
    changes: dict[str, Any] = {
        "unit_code": unit_code,
        "assignee_id": assignee,
        "dispatched_at": step.now,
        "tier": tier,
    }
    if step.body.deadline is not None:
        changes["due_at"] = step.body.deadline
    details: dict[str, Any] = {
        "unit": unit_code,
        "assignee": assignee,
        "proposed_unit": proposal["code"] if proposal else None,
        "proposed_assignee": proposed_assignee,
    }
    if (step.body.unit and proposal and step.body.unit != proposal["code"]) or (
        step.body.assignee and step.body.assignee != proposed_assignee
    ):
        details["override"] = True
    if step.body.deadline is not None:
        details["deadline_override"] = True
    return changes, details


GRID_WORKER_ROLE = "full_time_worker"  # 专职网格员: whom a community matter goes to first


def _grid_worker(store: IndexStore, path: list[str]) -> int | None:
    """The full-time worker of the finest grid on the path that has one, else whoever is first."""
    on_duty = staff_on_duty(store, path)
    workers = [person for person in on_duty if person.get("role") == GRID_WORKER_ROLE]
    chosen = (workers or on_duty or [{}])[0]
    return chosen.get("id")


def _handle(step: Step) -> Effects:
    if step.body.photos:
        from api.db.attachments import attachment_ids

        known = attachment_ids(step.connection, step.event["id"])
        missing = [p for p in step.body.photos if p not in known]
        if missing:
            raise InvalidInput(
                f"照片 {missing} 不属于该事件，请先上传到 /events/{step.event['id']}/attachments",
                code="unknown_photo",
                where="body.photos",
            )
    return {"handled_at": step.now}, {"photos": step.body.photos}


def _verify(step: Step) -> Effects:
    start = step.event["dispatched_at"] or step.event["accepted_at"] or step.event["reported_at"]
    hours = round(step.catalogue.calendar.hours_between(start, step.now), 2) if start else None
    on_time = step.event["due_at"] is None or step.now <= step.event["due_at"]
    return (
        {"closed_at": step.now, "handling_hours": hours},
        {"handling_hours": hours, "on_time": on_time},
    )


def _rework(step: Step) -> Effects:
    return {"rework_count": step.event["rework_count"] + 1, "handled_at": None}, {
        "rework": step.event["rework_count"] + 1
    }


def _evaluate(step: Step) -> Effects:
    return {"satisfaction": step.body.satisfaction}, {"satisfaction": step.body.satisfaction}


def _return(step: Step) -> Effects:
    return {"return_count": step.event["return_count"] + 1, "postpone_requested_until": None}, {
        "unit": step.event["unit_code"]
    }


def _request_postpone(step: Step) -> Effects:
    if step.event["postpone_requested_until"] is not None:
        raise Conflict("已有待审批的延期申请", code="postpone_pending", where="body.action")
    assert step.body.deadline is not None
    _future(step.body.deadline, step.now)
    if step.event["due_at"] is not None and step.body.deadline <= step.event["due_at"]:
        raise InvalidInput(
            "申请的新期限应晚于当前期限", code="deadline_not_later", where="body.deadline"
        )
    return {"postpone_requested_until": step.body.deadline}, {
        "requested": step.body.deadline.isoformat()
    }


def _pending(event: dict) -> datetime:
    if event["postpone_requested_until"] is None:
        raise Conflict("没有待审批的延期申请", code="no_postpone_request", where="body.action")
    return event["postpone_requested_until"]


def _approve_postpone(step: Step) -> Effects:
    requested = _pending(step.event)
    _future(step.body.deadline, step.now)
    due = step.body.deadline or requested
    return (
        {
            "due_at": due,
            "postpone_requested_until": None,
            "postpone_count": step.event["postpone_count"] + 1,
            "warning_level": 0,
        },
        {
            "from": step.event["due_at"].isoformat() if step.event["due_at"] else None,
            "to": due.isoformat(),
        },
    )


def _deny_postpone(step: Step) -> Effects:
    return {"postpone_requested_until": None}, {"denied": _pending(step.event).isoformat()}


def _escalate(step: Step) -> Effects:
    current = step.event["tier"] or step.catalogue.tier_for(step.event["category_code"])
    tier = step.body.tier or current - 1
    if tier >= current or tier < 1:
        raise InvalidInput(
            f"只能升级到更高层级（当前为{TIER_NAMES[current]}，第 {current} 级）",
            code="cannot_escalate",
            where="body.tier",
        )
    _future(step.body.deadline, step.now)
    due = step.body.deadline or step.catalogue.handle_deadline(
        step.now, step.event["category_code"], tier
    )
    return (
        {
            "tier": tier,
            "unit_code": None,
            "assignee_id": None,
            "due_at": due,
            "postpone_requested_until": None,
            "escalation_count": step.event["escalation_count"] + 1,
            "warning_level": 0,
        },
        {"from_tier": current, "tier": tier, "due_at": due.isoformat()},
    )


def _cancel(step: Step) -> Effects:
    return {}, {}


def _merge(step: Step) -> Effects:
    assert step.body.target is not None
    if step.body.target == step.event["id"]:
        raise InvalidInput("不能合并到自身", code="merge_into_self", where="body.target")
    original = rows.lock_event(step.connection, step.body.target)
    if original is None:
        raise InvalidInput(
            f"没有编号为 {step.body.target} 的事件", code="unknown_target", where="body.target"
        )
    if State(original["status"]) not in OPEN:
        raise Conflict(
            f"原事件 {step.body.target} 已{LABELS_ZH[State(original['status'])]}，不能合并到它",
            code="target_finished",
            where="body.target",
        )
    rows.add_history(
        step.connection,
        event_id=original["id"],
        action="absorb",
        from_status=original["status"],
        status=original["status"],
        actor="system",
        note=f"合并了重复上报的事件 {step.event['id']}",
        version=original["version"],
        details={"duplicate": step.event["id"]},
        at=step.now,
    )
    return {"merged_into": step.body.target}, {"target": step.body.target}


def _supervise(step: Step) -> Effects:
    _future(step.body.deadline, step.now)
    assert step.body.note is not None
    order = rows.add_supervision(
        step.connection, step.event["id"], step.body.note, step.body.deadline, step.actor
    )
    return {}, {
        "supervision": order,
        "due_at": step.body.deadline.isoformat() if step.body.deadline else None,
    }


def _start(step: Step) -> Effects:
    return {}, {}


_EFFECTS = {
    "accept": _accept,
    "reject": _cancel,
    "dispatch": _dispatch,
    "start": _start,
    "handle": _handle,
    "verify": _verify,
    "rework": _rework,
    "evaluate": _evaluate,
    "return": _return,
    "request_postpone": _request_postpone,
    "approve_postpone": _approve_postpone,
    "deny_postpone": _deny_postpone,
    "escalate": _escalate,
    "cancel": _cancel,
    "merge": _merge,
    "supervise": _supervise,
}
assert set(_EFFECTS) == set(ACTIONS), "every action has its effect"
