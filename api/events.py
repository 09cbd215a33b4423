"""Event intake: geocode, assign a grid and its staff, store durably and idempotently.

Idempotent on (source, external_id): the SHA-256 of the submitted payload is stored, so a retry
of the same payload returns the stored event and a different payload under the same id is a
conflict, never merged. An event that cannot be placed is still accepted (nothing accepted is
lost) with no grid and a note that it needs manual dispatch.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np
import orjson
from pydantic import BaseModel, Field, model_validator
from sqlalchemy import Engine

from api.db import events as event_rows
from api.lookup.index_store import IndexStore
from api.lookup.service import lookup_points, match_address, staff_on_duty
from api.privacy import Caller
from api.times import Instant

MAX_BATCH_EVENTS = 10_000


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
        canonical = orjson.dumps(self.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
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


def intake(
    engine: Engine, store: IndexStore, events: list[EventIn], *, actor: str, caller: Caller
) -> list[dict[str, Any]]:
    """Store each event (or find it); returns one outcome per event, in order."""
    placements = _placement(store, events, caller)
    now = datetime.now(UTC)
    outcomes: list[dict[str, Any]] = []
    with engine.begin() as connection:  # committed before the caller answers: durable
        hours = event_rows.due_hours(connection)
        for event, placement in zip(events, placements, strict=True):
            if event.category_code and event.category_code not in hours:
                outcomes.append(
                    {
                        "status": "invalid",
                        "error": {
                            "code": "unknown_category",
                            "message": f"未知事件类别 {event.category_code}",
                            "where": "category_code",
                        },
                    }
                )
                continue
            if "error" in placement:
                outcomes.append(
                    {"status": "invalid", "error": {**placement["error"], "where": "lon,lat"}}
                )
                continue
            grid = placement.get("grid")
            reported = event.reported_at or now
            due = hours.get(event.category_code or "")
            try:
                due_at = reported + timedelta(hours=due) if due else None
            except OverflowError:  # reported at the very end of the calendar
                outcomes.append(
                    {
                        "status": "invalid",
                        "error": {
                            "code": "reported_at_out_of_range",
                            "message": "reported_at 加上处置时限超出了可表示的时间范围",
                            "where": "reported_at",
                        },
                    }
                )
                continue
            values = {
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
                "due_at": due_at,
            }
            new_id = event_rows.insert_event(connection, values, actor)
            stored = event_rows.find_event(
                connection, source=event.source, external_id=event.external_id
            )
            assert stored is not None
            if new_id is None and stored["payload_sha256"] != values["payload_sha256"]:
                outcomes.append(
                    {
                        "status": "conflict",
                        "event_id": stored["id"],
                        "error": {
                            "code": "external_id_conflict",
                            "message": f"{event.source} 的事件 {event.external_id} 已以不同内容受理，不会合并；"
                            "如需更正请使用新的 external_id 或走更正流程",
                            "where": "external_id",
                        },
                    }
                )
                continue
            outcomes.append(
                {
                    "status": "created" if new_id is not None else "existing",
                    "event": event_answer(stored, store, caller, placement),
                }
            )
    return outcomes


def event_answer(
    row: dict[str, Any], store: IndexStore, caller: Caller, placement: dict[str, Any] | None = None
) -> dict[str, Any]:
    """An event as this caller may see it (api/privacy.py decides what is personal)."""
    body: dict[str, Any] = {
        "id": row["id"],
        "source": row["source"],
        "external_id": row["external_id"],
        "category_code": row["category_code"],
        "status": row["status"],
        "raw": {"x": row["raw_x"], "y": row["raw_y"], "crs": row["raw_crs"]},
        "lon": row["lon"],
        "lat": row["lat"],
        "grid_code": row["grid_code"],
        "generation": row["generation_id"],
        "reported_at": event_rows.as_timestamp(row["reported_at"]),
        "received_at": event_rows.as_timestamp(row["received_at"]),
        "due_at": event_rows.as_timestamp(row["due_at"]),
    }
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
    if caller.sees_personal(scope):
        body["description"] = row["description"]
        body["address"] = row["address"]
        body["reporter"] = {"name": row["reporter_name"], "phone": row["reporter_phone"]}
    visible = caller.personal_codes(scope)
    if visible:
        body["staff"] = staff_on_duty(store, visible)
    return body
