"""The demo street's events taken through the loop, so the dashboard shows something true.

Each invented event is walked through the real state machine with the real rules and working
calendar: accepted (or, rarely, rejected, merged into a duplicate or cancelled), dispatched to the
unit the rules propose and, at tier 3, the grid's full-time worker; some escalated, some
postponed, some sent back for rework, some supervised (督办); most closed, on time or late,
many evaluated. Events of the last weeks stop part-way, so some are open, some warned, some
overdue. Deterministic for a seed and a load day.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from api.workflow.rules import Catalogue

DISPATCHER = "demo:指挥中心调度员"
SUPERVISOR = "demo:街道督办员"
HANDLER = "demo:处置人员"
STALLS = ("accepted", "dispatched", "processing", "handled")
RECENT = timedelta(days=21)
VERIFIER = "demo:网格员"


@dataclass
class Walk:
    """One event's way through the loop: its final columns and its history lines."""

    event: dict[str, Any]
    history: list[tuple] = field(default_factory=list)
    supervisions: list[tuple] = field(default_factory=list)
    version: int = 1

    def step(
        self,
        at: datetime,
        action: str,
        status: str,
        actor: str,
        note: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        self.version += 1
        self.history.append(
            (at, action, self.event["status"], status, actor, note, self.version, details or {})
        )
        self.event["status"] = status


def _hours(rng: np.random.Generator, mean: float) -> float:
    return float(rng.gamma(2.0, mean / 2.0))


def walk_events(
    events: list[dict[str, Any]],
    catalogue: Catalogue,
    path_of: Callable[[str], list[str]],
    worker_of: Callable[[str], int | None],
    now: datetime,
    seed: int,
) -> list[Walk]:
    """Take every event as far through the loop as it got by `now`."""
    rng = np.random.default_rng(seed)
    calendar = catalogue.calendar
    walks = []
    for index, event in enumerate(events):
        walk = Walk(event)
        reported = event["reported_at"]
        event.update(status="reported", received_at=reported)
        category = event["category_code"]
        tier = catalogue.tier_for(category)
        event["tier"] = tier
        event["accept_due_at"] = catalogue.accept_deadline(reported, category, tier)
        walk.history.append(
            (reported, "report", None, "reported", event["source"], "已受理", 1, {})
        )
        walks.append(walk)
        draw = rng.random(9)
        # A quarter of the last fortnight's events stall at some stage: the open, warned and
        # overdue work a command centre looks at.
        stall = str(rng.choice(STALLS)) if now - reported < RECENT and draw[8] < 0.4 else None
        # How late this event is by `now` decides how far it can have got.
        accept_time = calendar.add_hours(reported, _hours(rng, 1.0 if draw[0] < 0.93 else 6.0))
        if accept_time > now or (stall and draw[8] < 0.03):
            continue
        event["responded_at"] = accept_time
        if draw[1] < 0.03:
            walk.step(accept_time, "reject", "rejected", DISPATCHER, "不属于网格化管理事项")
            continue
        if draw[1] < 0.05 and index > 0:
            original = int(rng.integers(max(0, index - 30), index))
            event["merged_into"] = original + 1  # ids are list positions from 1
            walk.step(
                accept_time, "merge", "merged", DISPATCHER, "重复上报", {"target": original + 1}
            )
            continue
        if draw[1] < 0.06:
            walk.step(accept_time, "cancel", "cancelled", DISPATCHER, "上报人撤回")
            continue
        event["accepted_at"] = accept_time
        event["due_at"] = catalogue.handle_deadline(accept_time, category, tier)
        walk.step(accept_time, "accept", "accepted", DISPATCHER, details={"tier": tier})
        if draw[2] < 0.05 and tier > 1:
            tier -= 1
            event["tier"] = tier
            event["escalation_count"] = 1
            event["due_at"] = catalogue.handle_deadline(accept_time, category, tier)
            walk.step(accept_time, "escalate", "accepted", DISPATCHER, "需上级部门处置")
        dispatch_time = calendar.add_hours(accept_time, _hours(rng, 0.3))
        if dispatch_time > now or stall == "accepted":
            continue
        unit = catalogue.unit_for(category, tier, path_of(event["grid_code"]))
        event["unit_code"] = unit["code"] if unit else None
        event["assignee_id"] = worker_of(event["grid_code"]) if tier == 3 else None
        event["dispatched_at"] = dispatch_time
        walk.step(
            dispatch_time,
            "dispatch",
            "dispatched",
            DISPATCHER,
            details={"unit": event["unit_code"], "assignee": event["assignee_id"]},
        )
        start_time = calendar.add_hours(dispatch_time, _hours(rng, 0.5))
        if start_time > now or stall == "dispatched":
            continue
        walk.step(start_time, "start", "processing", HANDLER)
        allowed = calendar.hours_between(dispatch_time, event["due_at"])
        if draw[3] < 0.08:  # the handler asks for more time, and gets it
            asked = calendar.add_hours(start_time, 0.5)
            if asked > now:
                continue
            new_due = calendar.add(event["due_at"], 2, "days")
            walk.step(asked, "request_postpone", "processing", HANDLER, "需协调产权单位")
            walk.step(
                asked,
                "approve_postpone",
                "processing",
                DISPATCHER,
                details={"to": new_due.isoformat()},
            )
            event["due_at"] = new_due
            event["postpone_count"] = 1
            allowed = calendar.hours_between(dispatch_time, new_due)
        late = draw[4] < 0.12
        share = float(rng.uniform(1.05, 1.8)) if late else float(rng.beta(2.0, 3.0))
        handle_time = calendar.add_hours(dispatch_time, max(allowed * share, 0.2))
        if draw[5] < 0.06 and calendar.add_hours(start_time, 1.0) <= now:
            order_time = calendar.add_hours(start_time, 1.0)
            walk.supervisions.append(("请加快处置并反馈", None, SUPERVISOR, order_time))
            walk.step(order_time, "supervise", "processing", SUPERVISOR, "请加快处置并反馈")
        if handle_time > now or stall == "processing":
            continue
        walk.step(handle_time, "handle", "handled", HANDLER, "已处置")
        if draw[6] < 0.08:  # verification fails once
            rework_time = calendar.add_hours(handle_time, _hours(rng, 1.0))
            if rework_time > now:
                continue
            walk.step(rework_time, "rework", "processing", VERIFIER, "现场仍未清理干净")
            event["rework_count"] = 1
            handle_time = calendar.add_hours(rework_time, _hours(rng, 3.0))
            if handle_time > now:
                continue
            walk.step(handle_time, "handle", "handled", HANDLER, "已再次处置")
        event["handled_at"] = handle_time
        close_time = calendar.add_hours(handle_time, _hours(rng, 1.0))
        if close_time > now or stall == "handled":
            continue
        event["closed_at"] = close_time
        event["handling_hours"] = round(calendar.hours_between(dispatch_time, close_time), 2)
        walk.step(
            close_time,
            "verify",
            "closed",
            VERIFIER,
            details={"on_time": close_time <= event["due_at"]},
        )
        if draw[7] < 0.6:
            evaluate_time = close_time + timedelta(hours=float(rng.uniform(2, 48)))
            if evaluate_time <= now:
                event["satisfaction"] = int(rng.choice([5, 5, 5, 4, 4, 3, 2, 1]))
                walk.step(
                    evaluate_time,
                    "evaluate",
                    "evaluated",
                    DISPATCHER,
                    details={"satisfaction": event["satisfaction"]},
                )
    for walk in walks:
        walk.event["version"] = walk.version
    return walks
