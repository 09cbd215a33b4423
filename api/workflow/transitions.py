"""One transition of an event through the loop: checked, applied, recorded, announced.

Checks run in this order, and nothing is written unless all pass: the event exists (404), the
caller's version is current (409 stale_version), the action is possible from the event's state
(409 illegal_transition, listing what the caller may do instead), the caller's role may take it
and the event is in the caller's scope (403), and the action has what it needs (422). Then, in
one transaction: the event's columns, a history line that is never rewritten (who, when, what,
where, note, details such as an overridden proposal), and an outbox notification.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import numpy as np
from pydantic import BaseModel, Field, model_validator
from sqlalchemy import Connection, Engine

from api.auth import Principal, Role
from api.db import idempotency
from api.db import workflow as rows
from api.errors import Conflict, Forbidden, InvalidInput, NotFound
from api.lookup.index_store import IndexStore
from api.settings import WorkflowSettings
from api.times import Instant
from api.workflow.calendar import WorkCalendar, parse_periods
from api.workflow.effects import EFFECTS, Step
from api.workflow.machine import ACTIONS, LABELS_ZH, Action, State, allowed_actions
from api.workflow.rules import Catalogue
from spatial.chinacrs import out_of_china
from spatial.crs import coordinate_problems, normalise_crs, to_wgs84_xy


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


# 核查 is someone else's job than 处置: the token that handled an event does not verify it.
CHECKS_WORK = frozenset({"verify", "rework"})


def _handled_by(connection: Connection, event_id: int, principal: Principal) -> bool:
    """Did this caller record the event's last 处置 — with this token, or as the same person
    with another (a worker's second phone)?"""
    handler = rows.last_handler(connection, event_id)
    if handler is None:
        return False
    actor, staff_id = handler
    return actor == principal.actor or (staff_id is not None and staff_id == principal.staff_id)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


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
    return position_in_china(body.lon, body.lat, body.crs, "body.lon,lat")


def position_in_china(x: float, y: float, crs: str, where: str) -> tuple[float, float]:
    """A person's position (a phone's, a handler's) in WGS84, or 422: not numbers, swapped,
    or outside China, where nobody in wangge works."""
    spec = normalise_crs(crs)
    xs, ys = np.array([x]), np.array([y])
    [problem] = coordinate_problems(xs, ys, spec)
    if problem:
        raise InvalidInput(problem, code="invalid_coordinates", where=where)
    lon, lat = to_wgs84_xy(xs, ys, spec)
    if not np.isfinite(lon).all() or out_of_china(lon, lat).any():
        raise InvalidInput(
            f"位置 ({x}, {y}, {crs}) 换算到 WGS84 后不在中国境内：请检查坐标系和经纬度次序",
            code="outside_china",
            where=where,
        )
    return float(lon[0]), float(lat[0])


def in_scope(event: dict[str, Any], principal: Principal, store: IndexStore) -> bool:
    """Field staff act on events in their grids or assigned to them; handlers on events
    dispatched to their unit."""
    if principal.role == Role.field_staff:
        if principal.staff_id is not None and event.get("assignee_id") == principal.staff_id:
            return True
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


def apply_transition(
    engine: Engine,
    store: IndexStore,
    settings: WorkflowSettings,
    event_id: int,
    body: TransitionIn,
    principal: Principal,
    *,
    now: datetime | None = None,
    idempotency_key: str | None = None,
) -> tuple[dict[str, Any], bool]:
    """Apply one transition; returns ({event_id, action, from, status, version, details}, whether
    it is the stored answer of an earlier request with the same idempotency key)."""
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
    digest = hashlib.sha256(f"{event_id}:{body.model_dump_json()}".encode()).hexdigest()
    with engine.begin() as connection:
        if idempotency_key is not None:
            stored = idempotency.hold(connection, principal.token_id, idempotency_key)
            if stored is not None:
                if stored["request_sha256"] != digest:
                    raise InvalidInput(
                        "该 Idempotency-Key 已用于另一个请求",
                        code="idempotency_key_reused",
                        where="header.Idempotency-Key",
                    )
                return stored["response"], True
        if action.name == "merge" and body.target is not None and body.target < event_id:
            # Two events locked in id order: merging A into B while B goes into A waits, not deadlocks.
            rows.lock_event(connection, body.target)
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
        if not in_scope(event, principal, store):
            raise Forbidden(
                "该事件不在您的网格或处置单位范围内", code="out_of_scope", where="path.event_id"
            )
        if action.name in CHECKS_WORK and _handled_by(connection, event_id, principal):
            raise Forbidden(
                "核查须由处置人以外的人完成（网格员、监督员或调度员）",
                code="same_person",
                where="body.action",
            )
        _need(body, action)
        catalogue = load_catalogue(connection, settings)
        step = Step(connection, store, catalogue, event, body, now, principal.actor, lon, lat)
        changes, details = EFFECTS[action.name](step)
        target = action.target or state
        if action.target is not None:
            changes["status"] = target.value
        if state == State.reported and action.target is not None and event["responded_at"] is None:
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
        # What a receiver (the 12345 platform) needs to answer its caller: the result, the note,
        # who handles it now and by when. Receivers are configured and trusted (README).
        announcement = {
            "event_id": event_id,
            "source": event["source"],
            "external_id": event["external_id"],
            "action": action.name,
            "from": state.value,
            "status": target.value,
            "version": version,
            "at": now.isoformat(),
            "note": body.note,
            "unit_code": changes.get("unit_code", event["unit_code"]),
            "due_at": _iso(changes.get("due_at", event["due_at"])),
            "details": details,
        }
        rows.enqueue(connection, "transition", event_id, announcement)
        answer = {
            "event_id": event_id,
            "action": action.name,
            "from": state.value,
            "status": target.value,
            "version": version,
            "details": details,
        }
        if idempotency_key is not None:
            idempotency.remember(
                connection, principal.token_id, idempotency_key, digest, 200, answer
            )
    return answer, False
