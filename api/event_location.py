"""Placing an event by hand (人工定位): a dispatcher puts an event on a grid that the geocoder
could not choose — a road stretch, a crossing where grids meet, an address the gazetteer lacks.

Three ways, exactly one per request: a grid of the active generation (`grid_code`); a gazetteer
place (`place`: its point, and the one grid it lies in — a place spanning grids also needs
`grid_code`, one of the grids it touches); or a point (`lon`/`lat`/`crs`, located with the index).
The event's point follows: it stays when it already lies in the chosen grid, else it moves to the
nearest point just inside the grid (the history keeps by how far), and an event without a point
gets the grid's point on surface. So the event's point and grid never disagree, and a later
redraw re-places it where the dispatcher put it.

Checks, nothing written unless all pass: the body names one way (422), the event exists (404),
the version is current (409 stale_version, as transitions), the event is open (409
event_finished), the grid or place exists (404), lies in one grid or names one (409 spans_grids,
422 …). Then in one transaction: the point, grid and generation, the version bumped, one history
line (`locate`), one outbox notification and an audit record. The answer is the event as
`GET /events/{id}` shows it: the dispatch proposal and the field staff who see it follow the grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr
from sqlalchemy import Engine

from api.address_corrections import KIND_LABELS, TARGET_KINDS
from api.auth import Principal
from api.db import audit
from api.db import event_location as location_rows
from api.db import events as event_rows
from api.db import workflow as workflow_rows
from api.db.generations import generation_at
from api.errors import Busy, Conflict, InvalidInput, NotFound
from api.event_views import event_record
from api.lookup.geocoding import ASSIGN_RANK, place_grids
from api.lookup.index_store import IndexStore
from api.privacy import Caller
from api.settings import WorkflowSettings
from api.workflow.machine import LABELS_ZH, OPEN, State
from api.workflow.transitions import position_in_china
from spatial.crs import UnknownCRS
from spatial.inside import nearest_sample, point_inside, surface_point
from spatial.lookup import GridIndex

# A place "touches" a grid when one of its sample points lies within this many metres of it:
# roads and crossings lie exactly on grid edges, so the grids on both sides count.
PLACE_REACH_M = 2.0
PLACE_KINDS = (*TARGET_KINDS, "community")
BIGINT = 9_223_372_036_854_775_807


class PlaceRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: StrictStr = Field(
        max_length=32,
        description="building | compound | house_number | road | poi | intersection | community",
    )
    code: StrictStr = Field(
        min_length=1, max_length=200, description="The place's code (路口: '<road>+<road>')"
    )


class LocationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: StrictInt = Field(ge=1, le=BIGINT, description="The event's version as last read")
    grid_code: StrictStr | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="A grid of the active generation (网格 or finer); with `place`: which of "
        "the grids the place touches",
    )
    place: PlaceRef | None = Field(default=None, description="A gazetteer place")
    lon: float | None = None
    lat: float | None = None
    crs: StrictStr | None = Field(
        default=None, max_length=32, description="With lon/lat: EPSG code, gcj02 or bd09"
    )
    note: StrictStr | None = Field(default=None, max_length=4000)


@dataclass(frozen=True)
class Target:
    """Where the event goes: a grid of `index`, and a WGS84 point inside it."""

    position: int
    lon: float
    lat: float
    by: str  # grid | place | point
    moved_m: float | None = None  # how far the event's own point moved into the grid
    place: dict[str, Any] | None = None


def _way(body: LocationIn) -> str:
    """Which way the body names (grid, place or point), or 422 naming the field at fault."""
    point = [name for name in ("lon", "lat", "crs") if getattr(body, name) is not None]
    if point and len(point) < 3:
        missing = next(n for n in ("lon", "lat", "crs") if getattr(body, n) is None)
        raise InvalidInput(
            "按坐标定位需同时给出 lon、lat 与 crs", code="incomplete_point", where=f"body.{missing}"
        )
    if point and (body.grid_code is not None or body.place is not None):
        other = "place" if body.place is not None else "grid_code"
        raise InvalidInput(
            f"只能选一种定位方式：坐标（lon/lat/crs）不能与 {other} 同时给出",
            code="one_location",
            where=f"body.{other}",
        )
    if point:
        return "point"
    if body.place is not None:
        return "place"
    if body.grid_code is not None:
        return "grid"
    raise InvalidInput(
        "请给出定位方式之一：grid_code（网格）、place（地名地址库中的地点）或 lon/lat/crs（坐标）",
        code="location_missing",
        where="body",
    )


def _grid(index: GridIndex, code: str) -> int:
    """A grid of the active generation fine enough to dispatch from (网格 or below)."""
    position = index.by_code.get(code)
    if position is None:
        raise NotFound(
            f"当前生效的网格版本（第 {index.generation} 版）中没有网格 {code}",
            code="grid_not_found",
            where="body.grid_code",
        )
    record = index.records[position]
    if record.rank < ASSIGN_RANK and not bool((index.leaves == position).any()):
        raise InvalidInput(
            f"{record.name}（{record.level}）范围过大：请定位到网格或更细一级",
            code="grid_too_coarse",
            where="body.grid_code",
        )
    return position


def _lies_in(index: GridIndex, position: int, lon: float, lat: float) -> bool:
    """Does the lookup put this point in the grid (or below it)?"""
    found = int(index.locate(np.array([lon]), np.array([lat]))[0])
    code = index.records[position].code
    return found >= 0 and any(r.code == code for r in index.path(found))


def _into(
    index: GridIndex, position: int, lon: float | None, lat: float | None
) -> tuple[float, float, float | None]:
    """A point for the event in the grid: its own if it lies there, else moved just inside,
    else (no point) the grid's point on surface. Returns (lon, lat, metres moved or None)."""
    geometry = index.geometries[position]
    if lon is None or lat is None:
        return (*surface_point(geometry), None)
    if _lies_in(index, position, lon, lat):
        return lon, lat, 0.0
    new_lon, new_lat, moved = point_inside(geometry, lon, lat)
    if not _lies_in(index, position, new_lon, new_lat):  # a sliver: fall back to its surface
        new_lon, new_lat = surface_point(geometry)
    return new_lon, new_lat, round(moved, 1)


def _by_grid(index: GridIndex, body: LocationIn, event: dict[str, Any]) -> Target:
    assert body.grid_code is not None
    position = _grid(index, body.grid_code)
    lon, lat, moved = _into(index, position, event["lon"], event["lat"])
    return Target(position, lon, lat, "grid", moved)


def _candidates(shares: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"grid": share["grid"], "share": share["share"]} for share in shares]


def _by_place(store: IndexStore, index: GridIndex, body: LocationIn) -> Target:
    assert body.place is not None
    kind, code = body.place.kind, body.place.code.strip()
    if kind not in PLACE_KINDS:
        raise InvalidInput(
            f"地点类型须为 {'、'.join(PLACE_KINDS)} 之一",
            code="invalid_place_kind",
            where="body.place.kind",
        )
    gazetteer = store.gazetteer
    if gazetteer is None:
        raise Busy("地名地址库尚未加载，请稍后再试", code="gazetteer_unavailable")
    match = gazetteer.place(kind, code)
    if match is None:
        label = KIND_LABELS.get(kind, "社区")
        raise NotFound(
            f"地名地址库中没有{label} {code}", code="place_not_found", where="body.place.code"
        )
    place = {"kind": match.kind, "code": match.code, "name": match.name}
    grid, shares = place_grids(index, match)
    if body.grid_code is not None:
        position = _grid(index, body.grid_code)
        samples_lon = np.append(np.asarray(match.samples_lon, dtype=float), match.lon)
        samples_lat = np.append(np.asarray(match.samples_lat, dtype=float), match.lat)
        nearest, metres = nearest_sample(samples_lon, samples_lat, index.geometries[position])
        if metres > PLACE_REACH_M:
            raise InvalidInput(
                f"{match.name} 不在网格 {body.grid_code} 内（相距约 {round(metres)} 米）："
                "请从该地点涉及的网格中选择",
                code="grid_not_on_place",
                where="body.grid_code",
                details=_candidates(shares),
            )
        # The place's own point if it lies in that grid, else its part nearest to the grid.
        lon, lat = float(match.lon), float(match.lat)
        if not _lies_in(index, position, lon, lat):
            lon, lat = float(samples_lon[nearest]), float(samples_lat[nearest])
        lon, lat, _ = _into(index, position, lon, lat)
        return Target(position, lon, lat, "place", place=place)
    if grid < 0:
        if shares:
            names = "、".join(f"{s['grid']['name']}（{s['grid']['code']}）" for s in shares)
            raise Conflict(
                f"{match.name} 跨越 {len(shares)} 个网格：{names}；请同时给出 grid_code 选定其一",
                code="spans_grids",
                where="body.place",
                details=_candidates(shares),
            )
        raise InvalidInput(
            f"{match.name} 不在当前任何网格内", code="place_outside_grids", where="body.place"
        )
    lon, lat, _ = _into(index, grid, float(match.lon), float(match.lat))
    return Target(grid, lon, lat, "place", place=place)


def _by_point(index: GridIndex, body: LocationIn) -> Target:
    assert body.lon is not None and body.lat is not None and body.crs is not None
    try:
        lon, lat = position_in_china(body.lon, body.lat, body.crs, "body.lon,lat")
    except UnknownCRS as error:
        raise InvalidInput(str(error), code="unknown_crs", where="body.crs") from None
    found = int(index.locate(np.array([lon]), np.array([lat]))[0])
    if found < 0:
        raise InvalidInput(
            f"坐标 ({body.lon}, {body.lat}) 不在当前任何网格内",
            code="outside_grids",
            where="body.lon,lat",
        )
    return Target(found, lon, lat, "point")


def _check_event(event: dict[str, Any] | None, event_id: int, version: int) -> State:
    if event is None:
        raise NotFound(
            f"没有编号为 {event_id} 的事件", code="event_not_found", where="path.event_id"
        )
    if version != event["version"]:
        raise Conflict(
            f"事件已被他人更新（当前版本 {event['version']}，提交的是 {version}），请刷新后重试",
            code="stale_version",
            where="body.version",
            details=[{"version": event["version"], "status": event["status"]}],
        )
    state = State(event["status"])
    if state not in OPEN:
        merged = f"（已合并到事件 {event['merged_into']}）" if event["merged_into"] else ""
        raise Conflict(
            f"事件已{LABELS_ZH[state]}{merged}，不能再定位",
            code="event_finished",
            where="path.event_id",
            details=[{"status": state.value}],
        )
    return state


def locate_event(
    engine: Engine,
    store: IndexStore,
    settings: WorkflowSettings,
    event_id: int,
    body: LocationIn,
    principal: Principal,
) -> dict[str, Any]:
    """Put the event on a grid by hand; returns the event as GET /events/{id} answers it."""
    way = _way(body)
    index = store.active()
    now = datetime.now(UTC)
    with engine.begin() as connection:
        event = location_rows.lock_event(connection, event_id)
        state = _check_event(event, event_id, body.version)
        assert event is not None
        if generation_at(connection) != index.generation:
            raise Conflict("网格版本刚刚更新，请稍后重试", code="generation_changed")
        if way == "grid":
            target = _by_grid(index, body, event)
        elif way == "place":
            target = _by_place(store, index, body)
        else:
            target = _by_point(index, body)
        record = index.records[target.position]
        details: dict[str, Any] = {
            "from_grid": event["grid_code"],
            "to_grid": record.code,
            "by": target.by,
            "generation": index.generation,
        }
        if target.place is not None:
            details["place"] = target.place
        if target.moved_m:
            details["moved_m"] = target.moved_m  # the event's point, moved into the chosen grid
        version = location_rows.set_location(
            connection,
            event_id,
            lon=target.lon,
            lat=target.lat,
            grid_code=record.code,
            generation_id=index.generation,
        )
        note = f"人工定位到网格 {record.name}（{record.code}）"
        if body.note and body.note.strip():
            note += f"：{body.note.strip()}"
        workflow_rows.add_history(
            connection,
            event_id=event_id,
            action="locate",
            from_status=state.value,
            status=state.value,
            actor=principal.actor,
            note=note,
            version=version,
            lon=target.lon,
            lat=target.lat,
            details=details,
            at=now,
        )
        # Placed at last: earlier open reports of the same category nearby are its duplicates.
        event_rows.propose_duplicates(
            connection, [event_id], settings.duplicate_distance_m, settings.duplicate_window_hours
        )
        workflow_rows.enqueue(
            connection,
            "transition",
            event_id,
            {
                "event_id": event_id,
                "source": event["source"],
                "external_id": event["external_id"],
                "action": "locate",
                "from": state.value,
                "status": state.value,
                "version": version,
                "at": now.isoformat(),
                "note": body.note,
                "grid_code": record.code,
                "unit_code": event["unit_code"],
                "due_at": event["due_at"].isoformat() if event["due_at"] else None,
                "details": details,
            },
        )
        audit.record(connection, principal.actor, "event.locate", "event", str(event_id), details)
    with engine.connect() as connection:
        return event_record(connection, store, settings, Caller(principal), event_id)
