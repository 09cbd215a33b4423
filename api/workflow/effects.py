"""What each action does to an event: the columns it changes and the details its history line
keeps. Called by api/workflow/transitions.py inside the transition's transaction, after every
check on the caller and the state has passed; an effect may still refuse (a deadline in the past,
a postponement without a request…) and then nothing is written."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from api.db import workflow as rows
from api.errors import Conflict, InvalidInput
from api.lookup.index_store import IndexStore
from api.lookup.service import staff_on_duty
from api.workflow.machine import ACTIONS, LABELS_ZH, OPEN, State
from api.workflow.rules import Catalogue

if TYPE_CHECKING:
    from api.workflow.transitions import TransitionIn

TIER_NAMES = {3: "社区", 2: "街道", 1: "区级部门"}


MAX_DEADLINE = timedelta(days=366)  # a deadline further out is a typo, not a plan


def _future(deadline: datetime | None, now: datetime, where: str = "body.deadline") -> None:
    """A deadline given by a person: after now, and within a year."""
    if deadline is None:
        return
    if deadline <= now:
        raise InvalidInput("期限不能早于当前时间", code="deadline_in_past", where=where)
    if deadline > now + MAX_DEADLINE:
        raise InvalidInput(
            "期限不能晚于一年之后；更长的办理请分阶段延期", code="deadline_too_far", where=where
        )


def _moved(old: datetime | None, new: datetime) -> dict[str, Any]:
    """A deadline change as its history line keeps it."""
    return {"due_from": old.isoformat() if old else None, "due_to": new.isoformat()}


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
    lon: float | None = None  # the caller's position, in WGS84, when the request gave one
    lat: float | None = None


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
    by_rule = step.catalogue.handle_deadline(step.now, category, tier)
    due = step.body.deadline or by_rule
    details: dict[str, Any] = {"tier": tier, "proposed_tier": proposed, "due_at": due.isoformat()}
    if step.body.deadline is not None:
        details.update(deadline_override=True, proposed_due_at=by_rule.isoformat())
    # The clock changes from the time to accept to the time to handle: warnings start again.
    changes = {
        "category_code": category,
        "tier": tier,
        "accepted_at": step.now,
        "due_at": due,
        "warning_level": 0,
    }
    return changes, details


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
    proposed_assignee = grid_worker(step.store, path) if tier == 3 else None
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
    current_due = step.event["due_at"]
    if step.body.deadline is not None:
        if current_due is not None and step.body.deadline > current_due:
            # More time is a postponement (延期), counted apart in the figures: not a re-dispatch.
            raise InvalidInput(
                "派遣不能推迟现有期限；如需更多时间，请由处置人申请延期、调度员批准",
                code="use_postponement",
                where="body.deadline",
            )
        changes["due_at"] = step.body.deadline
        changes["warning_level"] = 0
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
        details.update(deadline_override=True, **_moved(current_due, step.body.deadline))
    return changes, details


GRID_WORKER_ROLE = "full_time_worker"  # 专职网格员: whom a community matter goes to first


def grid_worker(store: IndexStore, path: list[str]) -> int | None:
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
    if step.event["due_at"] is not None and due <= step.event["due_at"]:
        raise InvalidInput(
            "批准的新期限应晚于当前期限", code="deadline_not_later", where="body.deadline"
        )
    return (
        {
            "due_at": due,
            "postpone_requested_until": None,
            "postpone_count": step.event["postpone_count"] + 1,
            "warning_level": 0,
        },
        _moved(step.event["due_at"], due),
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
    candidates = step.event.get("duplicate_candidates") or []
    if step.body.target not in candidates and not step.body.note:
        raise InvalidInput(
            f"事件 {step.body.target} 不在系统建议的重复事件中，合并需填写理由（note）",
            code="missing_field",
            where="body.note",
        )
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
    rows.enqueue(
        step.connection,
        "absorb",
        original["id"],
        {
            "event_id": original["id"],
            "source": original["source"],
            "external_id": original["external_id"],
            "action": "absorb",
            "status": original["status"],
            "duplicate": step.event["id"],
            "at": step.now.isoformat(),
        },
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


def _arrive(step: Step) -> Effects:
    assert step.lon is not None and step.lat is not None
    metres = rows.distance_to_event(step.connection, step.event["id"], step.lon, step.lat)
    return {}, {"distance_m": None if metres is None else round(metres, 1)}


def _start(step: Step) -> Effects:
    return {}, {}


EFFECTS = {
    "accept": _accept,
    "reject": _cancel,
    "dispatch": _dispatch,
    "start": _start,
    "arrive": _arrive,
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
assert set(EFFECTS) == set(ACTIONS), "every action has its effect"
