"""The event loop as data: states, actions, which state each action leads to and who may take it.

数字城管's steps: 信息收集 (reported) → 立案 (accepted) or 不予立案 (rejected) → 派遣 (dispatched) →
接单 (processing) → 处置反馈 (handled) → 核查 (verify: closed, or 返工 back to processing) →
综合评价 (evaluated). Around them: 退回 (returned, back to the dispatcher), 延期 (a postponement the
handler requests and the dispatcher approves), 升级 (escalated one tier up and accepted again),
作废 (cancelled), 合并 (merged into the original of a duplicate), and 督办 (a supervision order,
which changes no state), and 到场 (arrive: the worker's position on the spot, and its distance from
the event).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from api.auth import Role


class State(StrEnum):
    reported = "reported"  # 已上报：待立案
    accepted = "accepted"  # 已立案：待派遣
    rejected = "rejected"  # 不予立案
    dispatched = "dispatched"  # 已派遣：待接单
    processing = "processing"  # 处置中
    handled = "handled"  # 已处置：待核查
    returned = "returned"  # 已退回：待重新派遣
    closed = "closed"  # 已结案
    evaluated = "evaluated"  # 已评价
    cancelled = "cancelled"  # 已作废
    merged = "merged"  # 已合并到另一事件


LABELS_ZH = {
    State.reported: "待立案",
    State.accepted: "已立案",
    State.rejected: "不予立案",
    State.dispatched: "已派遣",
    State.processing: "处置中",
    State.handled: "待核查",
    State.returned: "已退回",
    State.closed: "已结案",
    State.evaluated: "已评价",
    State.cancelled: "已作废",
    State.merged: "已合并",
}
FINISHED = frozenset({State.rejected, State.closed, State.evaluated, State.cancelled, State.merged})
OPEN = frozenset(State) - FINISHED
# States whose clock is the handling deadline (due_at); before acceptance it is accept_due_at.
HANDLING = frozenset(
    {State.accepted, State.dispatched, State.processing, State.handled, State.returned}
)

OFFICE = frozenset({Role.admin, Role.dispatcher})
WORKERS = frozenset({Role.admin, Role.dispatcher, Role.handler, Role.field_staff})
VERIFIERS = frozenset({Role.admin, Role.dispatcher, Role.supervisor, Role.field_staff})
SUPERVISORS = frozenset({Role.admin, Role.supervisor})
ESCALATORS = frozenset({Role.admin, Role.dispatcher, Role.supervisor})


@dataclass(frozen=True)
class Action:
    name: str
    label_zh: str
    sources: frozenset[State]
    target: State | None  # None: the state does not change
    roles: frozenset[Role]
    needs: tuple[str, ...] = ()  # request fields this action cannot do without


def _action(
    name: str,
    label_zh: str,
    sources: set[State],
    target: State | None,
    roles: frozenset[Role],
    needs: tuple[str, ...] = (),
) -> Action:
    return Action(name, label_zh, frozenset(sources), target, roles, needs)


ACTIONS: dict[str, Action] = {
    a.name: a
    for a in (
        _action("accept", "立案", {State.reported}, State.accepted, OFFICE),
        _action("reject", "不予立案", {State.reported}, State.rejected, OFFICE, ("note",)),
        _action(
            "dispatch",
            "派遣",
            {State.accepted, State.returned, State.dispatched},
            State.dispatched,
            OFFICE,
        ),
        _action("start", "接单", {State.dispatched}, State.processing, WORKERS),
        _action(
            "arrive",
            "到场",
            {State.dispatched, State.processing},
            None,
            WORKERS,
            ("lon", "lat", "crs"),
        ),
        _action("handle", "处置反馈", {State.processing}, State.handled, WORKERS, ("note",)),
        _action("verify", "核查通过，结案", {State.handled}, State.closed, VERIFIERS),
        _action(
            "rework", "核查不通过，返工", {State.handled}, State.processing, VERIFIERS, ("note",)
        ),
        _action("evaluate", "评价", {State.closed}, State.evaluated, OFFICE, ("satisfaction",)),
        _action(
            "return",
            "退回",
            {State.dispatched, State.processing},
            State.returned,
            WORKERS - {Role.dispatcher},
            ("note",),
        ),
        _action(
            "request_postpone",
            "申请延期",
            {State.dispatched, State.processing},
            None,
            WORKERS,
            ("deadline", "note"),
        ),
        _action("approve_postpone", "批准延期", {State.dispatched, State.processing}, None, OFFICE),
        _action(
            "deny_postpone",
            "驳回延期",
            {State.dispatched, State.processing},
            None,
            OFFICE,
            ("note",),
        ),
        _action(
            "escalate",
            "升级",
            {State.accepted, State.dispatched, State.processing, State.returned},
            State.accepted,
            ESCALATORS,
            ("note",),
        ),
        _action("cancel", "作废", set(OPEN), State.cancelled, OFFICE, ("note",)),
        _action(
            "merge",
            "合并到原事件",
            {State.reported, State.accepted, State.returned},
            State.merged,
            OFFICE,
            ("target",),
        ),
        _action("supervise", "督办", set(OPEN), None, SUPERVISORS, ("note",)),
    )
}


# History lines also record what is not an action anyone takes: the report itself, a duplicate
# absorbed by its original, an event left without a grid by a redraw.
ACTION_LABELS = {
    "report": "上报",
    "absorb": "合并重复上报",
    "unplace": "网格调整后待重新分派",
    "locate": "人工定位",  # a dispatcher puts an event on a grid by hand (api/event_location.py)
    **{name: action.label_zh for name, action in ACTIONS.items()},
}


def allowed_actions(state: State, role: Role | None = None) -> list[str]:
    """Actions that can be taken from `state` (by `role`, when given), in the table's order."""
    return [
        a.name for a in ACTIONS.values() if state in a.sources and (role is None or role in a.roles)
    ]
