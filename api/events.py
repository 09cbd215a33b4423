"""Event intake: geocode, assign a grid and its staff, store durably and idempotently.

Idempotent on (source, external_id): the SHA-256 of the submitted payload is stored, so a retry
of the same payload returns the stored event and a different payload under the same id is a
conflict, never merged. An event that cannot be placed is still accepted (nothing accepted is
lost) with no grid and a note that it needs manual dispatch.
"""

from __future__ import annotations

import contextlib
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import numpy as np
import orjson
from pydantic import BaseModel, Field, ValidationError, model_validator
from sqlalchemy import Engine

from api.db import events as event_rows
from api.event_views import Clock, event_answer
from api.lookup.geocoding import geocode_summary
from api.lookup.index_store import IndexStore
from api.lookup.service import lookup_points, match_address
from api.privacy import Caller
from api.settings import WorkflowSettings
from api.times import Instant
from api.workflow.transitions import load_catalogue
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
    # What the caller said, up to a ticket's length: the geocoder reads the first 500 characters
    # and answers `too_long` beyond; the text is kept as given either way.
    address: str | None = Field(default=None, max_length=5000)
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
    # An event that fails validation is answered `invalid` in its place; the others go on.
    # left_to_right: an item is an EventIn whenever it validates as one in the usual (lax) way;
    # pydantic's default "smart" mode would prefer the exact dict type for any item with a text
    # timestamp.
    events: list[Annotated[EventIn | dict[str, Any], Field(union_mode="left_to_right")]] = Field(
        min_length=1, max_length=MAX_BATCH_EVENTS
    )


def intake_batch(
    engine: Engine,
    store: IndexStore,
    items: list[EventIn | dict[str, Any]],
    *,
    actor: str,
    caller: Caller,
    settings: WorkflowSettings,
) -> list[dict[str, Any]]:
    """One outcome per item, in order: the valid events go through `intake` together, each
    invalid one is answered with what is wrong and where (`events.<i>.<field>`)."""
    valid = [(i, item) for i, item in enumerate(items) if isinstance(item, EventIn)]
    outcomes: list[dict[str, Any]] = [
        _invalid_item(i, item) for i, item in enumerate(items) if not isinstance(item, EventIn)
    ]
    answered = dict(
        zip(
            (i for i, _ in valid),
            intake(
                engine,
                store,
                [item for _, item in valid],
                actor=actor,
                caller=caller,
                settings=settings,
            ),
            strict=True,
        )
    )
    invalid = iter(outcomes)
    return [answered[i] if i in answered else next(invalid) for i in range(len(items))]


def _invalid_item(number: int, raw: Any) -> dict[str, Any]:
    try:
        EventIn.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(["events", str(number), *(str(part) for part in first["loc"])])
        return _invalid("invalid_event", f"第 {number + 1} 个事件有误：{first['msg']}", where)
    return _invalid("invalid_event", f"第 {number + 1} 个事件有误", f"events.{number}")


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
            if category is not None and category not in catalogue.category_tiers:
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
                    "geocode": geocode_summary(placement),
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
