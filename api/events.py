"""Event intake: geocode, assign a grid and its staff, store durably and idempotently.

Idempotent on (source, external_id): the SHA-256 of the submitted payload is stored, so a retry
of the same payload returns the stored event and a different payload under the same id is a
conflict, never merged. An event that cannot be placed is still accepted (nothing accepted is
lost) with no grid and a note that it needs manual dispatch.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np
import orjson
from pydantic import BaseModel, Field, model_validator
from sqlalchemy import Connection, Engine

from api.db import events as event_rows
from api.db import workflow as workflow_rows
from api.db.filters import Page
from api.db.geojson import collection
from api.errors import NotFound
from api.lookup.index_store import IndexStore
from api.lookup.service import lookup_points, match_address, staff_on_duty
from api.privacy import Caller, public_actor
from api.settings import WorkflowSettings
from api.times import Instant
from api.workflow.calendar import WorkCalendar
from api.workflow.effects import grid_worker
from api.workflow.machine import ACTION_LABELS, LABELS_ZH, State, allowed_actions
from api.workflow.rules import Catalogue
from api.workflow.transitions import in_scope, load_catalogue
from api.workflow.warnings import warning
from spatial.crs import UnknownCRS, normalise_crs

MAX_BATCH_EVENTS = 10_000
EARLIEST_REPORT = datetime(2000, 1, 1, tzinfo=UTC)
CLOCK_SKEW = timedelta(hours=1)  # a reporting system's clock may run a little fast


class EventIn(BaseModel):
    source: str = Field(
        min_length=1,
        max_length=32,
        pattern=r"^[a-z0-9_]+$",
        description="Channel: patrol, hotline_12345, app, video, official …",
    )
    external_id: str = Field(
        min_length=1, max_length=128, description="The id in the source system"
    )
    category_code: str | None = Field(default=None, max_length=16)
    description: str | None = Field(default=None, max_length=4000)
    lon: float | None = None
    lat: float | None = None
    crs: str | None = Field(
        default=None, description="Required with lon/lat: EPSG code, gcj02 or bd09"
    )
    address: str | None = Field(default=None, max_length=300)
    reported_at: Instant | None = None
    reporter_name: str | None = Field(default=None, max_length=100)
    reporter_phone: str | None = Field(default=None, max_length=32)

    @model_validator(mode="after")
    def _located(self) -> EventIn:
        has_point = self.lon is not None or self.lat is not None
        if has_point and (self.lon is None or self.lat is None or not self.crs):
            raise ValueError("lon、lat 与 crs 需同时给出")
        if not has_point and not self.address:
            raise ValueError("需要坐标（lon、lat、crs）或地址（address）")
        return self

    def digest(self) -> str:
        """The payload's fingerprint; `epsg:4326` and `EPSG:4326` are the same payload."""
        payload = self.model_dump(mode="json")
        if self.crs:
            # An unknown CRS fails placing with a clear error; its fingerprint keeps what was sent.
            with contextlib.suppress(UnknownCRS):
                payload["crs"] = normalise_crs(self.crs)
        canonical = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(canonical).hexdigest()


class EventBatch(BaseModel):
    events: list[EventIn] = Field(min_length=1, max_length=MAX_BATCH_EVENTS)


Outcome = Literal["created", "existing", "conflict", "invalid"]


def _placement(store: IndexStore, events: list[EventIn], caller: Caller) -> list[dict[str, Any]]:
    """Where each event lands: grid, path, WGS84 point, runner-up — or why it could not land."""
    placements: list[dict[str, Any]] = [{} for _ in events]
    by_crs: dict[str, list[int]] = {}
    for i, event in enumerate(events):
        if event.lon is not None and event.crs:
            by_crs.setdefault(event.crs, []).append(i)
    for crs, members in by_crs.items():
        x = np.array([events[i].lon for i in members], dtype=float)
        y = np.array([events[i].lat for i in members], dtype=float)
        _, answers = lookup_points(store, x, y, crs, caller=caller)
        for i, answer in zip(members, answers, strict=True):
            placements[i] = answer
    for i, event in enumerate(events):
        if not placements[i] and event.address:
            placements[i] = match_address(store, event.address, caller=caller)
    return placements


def _invalid(code: str, message: str, where: str) -> dict[str, Any]:
    return {"status": "invalid", "error": {"code": code, "message": message, "where": where}}


def intake(
    engine: Engine,
    store: IndexStore,
    events: list[EventIn],
    *,
    actor: str,
    caller: Caller,
    settings: WorkflowSettings,
) -> list[dict[str, Any]]:
    """Store each event (or find it); returns one outcome per event, in order.

    Each new event is reported (已上报) with its proposed tier and the deadline to accept it in
    working time; events of the same category nearby are proposed as its duplicates. The whole
    batch is one transaction of a few statements, committed before the caller is answered."""
    placements = _placement(store, events, caller)
    now = datetime.now(UTC)
    outcomes: list[dict[str, Any] | None] = [None] * len(events)
    values: list[dict[str, Any]] = []
    members: list[int] = []
    with engine.begin() as connection:
        catalogue = load_catalogue(connection, settings)
        accept_due: dict[tuple[str | None, int], datetime] = {}
        for i, (event, placement) in enumerate(zip(events, placements, strict=True)):
            category = event.category_code
            if category and category not in catalogue.category_tiers:
                outcomes[i] = _invalid(
                    "unknown_category", f"未知事件类别 {category}", "category_code"
                )
                continue
            if "error" in placement:
                outcomes[i] = {
                    "status": "invalid",
                    "error": {**placement["error"], "where": "lon,lat"},
                }
                continue
            reported = event.reported_at or now
            if not EARLIEST_REPORT <= reported <= now + CLOCK_SKEW:
                outcomes[i] = _invalid(
                    "reported_at_out_of_range",
                    "reported_at 应在 2000 年之后、且不晚于当前时间",
                    "reported_at",
                )
                continue
            grid = placement.get("grid")
            tier = catalogue.tier_for(category)
            if (category, tier) not in accept_due:
                accept_due[category, tier] = catalogue.accept_deadline(now, category, tier)
            values.append(
                {
                    **event.model_dump(
                        include={
                            "source",
                            "external_id",
                            "category_code",
                            "description",
                            "address",
                            "reporter_name",
                            "reporter_phone",
                        }
                    ),
                    "raw_x": event.lon,
                    "raw_y": event.lat,
                    "raw_crs": event.crs,
                    "lon": placement.get("lon"),
                    "lat": placement.get("lat"),
                    "grid_code": grid["code"] if grid else None,
                    "generation_id": placement.get("generation") if grid else None,
                    "payload_sha256": event.digest(),
                    "reported_at": reported,
                    "tier": tier,
                    "accept_due_at": accept_due[category, tier],
                }
            )
            members.append(i)
        new_ids = set(event_rows.insert_events(connection, values, actor))
        event_rows.propose_duplicates(
            connection,
            sorted(new_ids),
            settings.duplicate_distance_m,
            settings.duplicate_window_hours,
        )
        stored = event_rows.find_events(
            connection, [(v["source"], v["external_id"]) for v in values]
        )
        claimed: set[int] = set()
        for i, value in zip(members, values, strict=True):
            row = stored[(value["source"], value["external_id"])]
            created = row["id"] in new_ids and row["id"] not in claimed
            claimed.add(row["id"])
            if not created and row["payload_sha256"] != value["payload_sha256"]:
                outcomes[i] = {
                    "status": "conflict",
                    "event_id": row["id"],
                    "error": {
                        "code": "external_id_conflict",
                        "message": f"{value['source']} 的事件 {value['external_id']} 已以不同内容受理，不会合并；"
                        "如需更正请使用新的 external_id 或走更正流程",
                        "where": "external_id",
                    },
                }
                continue
            outcomes[i] = {
                "status": "created" if created else "existing",
                "event": event_answer(
                    row,
                    store,
                    caller,
                    placements[i],
                    clock=Clock(catalogue, settings, now),
                ),
            }
    return [outcome for outcome in outcomes if outcome is not None]


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
        for line in event_rows.history(connection, event_id)
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
    return body
