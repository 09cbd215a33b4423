"""Patrol coverage (巡查覆盖率) of a grid over a period: the share of its micro-grids entered,
of its buildings passed within buffer_m and of its street length walked, per worker and in all,
and the places nobody visited.

The grid's places come from the active generation (micro-grids: the leaves at or below it) and
the building table; the tracks from PostGIS, clipped to the period by their M values. The
geometry is spatial.patrol's. A grid's streets are the union of its micro-grids' boundaries, its
outer edge included: in a street cut into grids by roads, every grid and micro-grid edge is a
road, and the outer edge is shared with the neighbour (walking it counts for both grids).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import numpy as np
import shapely
from shapely.geometry import mapping
from sqlalchemy import Connection

from api.db import patrols as patrol_rows
from api.errors import Forbidden, InvalidInput, NotFound
from api.lookup.index_store import IndexStore
from api.patrols.access import COVERAGE_ROLES, owns, sees_coverage
from api.patrols.service import retention_start
from api.privacy import Caller
from api.settings import PatrolSettings
from api.workflow.calendar import SHANGHAI
from spatial.patrol import Coverage, clip_by_time, patrol_coverage

MAX_PERIOD_DAYS = 31
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2099, 12, 31)
DEGREES_PER_METRE = 1 / 80_000  # generous at China's latitudes (a degree of longitude ≥ 80 km)


def local_period(start: date | None, end: date | None, max_days: int) -> tuple[date, date]:
    """[from, to] in local days (Asia/Shanghai); by default today."""
    today = datetime.now(SHANGHAI).date()
    end = end or start or today
    start = start or end
    if start > end:
        raise InvalidInput("from 不能晚于 to", code="invalid_period", where="query.from")
    for day, where in ((start, "query.from"), (end, "query.to")):
        if not FIRST_DAY <= day <= LAST_DAY:
            raise InvalidInput(
                f"日期应在 {FIRST_DAY} 至 {LAST_DAY} 之间", code="invalid_period", where=where
            )
    if (end - start).days >= max_days:
        raise InvalidInput(f"时间段最长 {max_days} 天", code="invalid_period", where="query.to")
    return start, end


def instants(start: date, end: date) -> tuple[datetime, datetime]:
    """Local days [start, end] as instants [begin, finish)."""
    return (
        datetime.combine(start, time(), SHANGHAI),
        datetime.combine(end + timedelta(days=1), time(), SHANGHAI),
    )


@dataclass(frozen=True)
class Owner:
    """Whose tracks: a staff member, or a token that names nobody."""

    staff_id: int | None
    token_id: int | None
    staff_name: str | None


def _figures(done: int | float, total: int | float, names: tuple[str, str]) -> dict[str, Any]:
    share = round(float(done) / float(total), 4) if total else None
    if isinstance(total, float):
        return {names[0]: round(total, 1), names[1]: round(float(done), 1), "share": share}
    return {names[0]: int(total), names[1]: int(done), "share": share}


def _summary(result: Coverage, rows: np.ndarray | slice) -> dict[str, Any]:
    """Figures over the owners selected by `rows`."""
    micro = np.asarray(result.micro_visited[rows].any(axis=0))
    passed = np.asarray(result.buildings_passed[rows].any(axis=0))
    walked = np.asarray(result.street_walked[rows].any(axis=0))
    return {
        "micro_grids": _figures(int(micro.sum()), len(micro), ("total", "visited")),
        "buildings": _figures(int(passed.sum()), len(passed), ("total", "passed")),
        "streets": _figures(
            float(result.street_lengths_m[walked].sum()),
            float(result.street_lengths_m.sum()),
            ("length_m", "walked_m"),
        ),
    }


def coverage_report(
    connection: Connection,
    store: IndexStore,
    caller: Caller,
    *,
    grid_code: str,
    start: date | None,
    end: date | None,
    staff_id: int | None,
    buffer_m: float | None,
    settings: PatrolSettings,
    summary: bool = False,
) -> dict[str, Any]:
    """Coverage of one grid (any level; its micro-grids are the leaves below it).

    `summary`: the figures only, without `micro_grid_visits` and `not_visited` (a street's
    not-visited GeoJSON is megabytes; a dashboard line needs none of it).
    """
    index = store.active()
    if grid_code not in index.by_code:
        raise NotFound(f"没有编码为 {grid_code} 的网格", code="grid_not_found", where="query.grid")
    path = store.active_path(grid_code)
    if not sees_coverage(caller, path):
        principal = caller.principal
        if principal is not None and principal.role.value == "field_staff":
            raise Forbidden(
                "该网格不在您的网格范围内", code="outside_token_scope", where="query.grid"
            )
        raise Forbidden(
            "巡查覆盖率仅供督办员、调度员、管理员和本网格网格员查看", code="insufficient_role"
        )
    principal = caller.principal
    assert principal is not None
    mine_only = principal.role not in COVERAGE_ROLES
    if mine_only and staff_id is not None and staff_id != principal.staff_id:
        raise Forbidden("只能查看自己的巡查", code="not_your_patrols", where="query.staff")
    first, last = local_period(start, end, MAX_PERIOD_DAYS)
    begin, finish = instants(first, last)
    buffer = buffer_m if buffer_m is not None else settings.buffer_m

    leaves = set(index.leaves.tolist())
    micro_positions = [index.by_code[c] for c in store.descendants(grid_code)]
    micro_positions = [p for p in micro_positions if p in leaves] or [index.by_code[grid_code]]
    micro_geoms = index.geometries[micro_positions]
    area = index.geometries[index.by_code[grid_code]]
    buildings = patrol_rows.buildings_within(connection, area)
    footprints = np.asarray(
        shapely.from_wkb([bytes(b["wkb"]) for b in buildings]) if buildings else [], dtype=object
    )
    xmin, ymin, xmax, ymax = shapely.total_bounds(area)
    pad = (buffer + settings.street_buffer_m) * DEGREES_PER_METRE
    reach = (xmin - pad, ymin - pad, xmax + pad, ymax + pad)
    rows = patrol_rows.tracks_near(
        connection,
        box=shapely.box(*reach),
        begin=begin,
        end=finish,
        not_before=retention_start(settings),
        staff_id=staff_id,
    )
    owners: dict[tuple[int | None, int | None], int] = {}
    people: list[Owner] = []
    tracks: list[np.ndarray] = []
    track_owner: list[int] = []
    patrols_of: dict[int, set[int]] = {}
    for row in rows:
        coords = shapely.get_coordinates(shapely.from_wkb(bytes(row["wkb"])), include_m=True)
        parts = clip_by_time(coords, begin.timestamp(), finish.timestamp(), reach)
        if not parts:
            continue
        key = (row["staff_id"], None) if row["staff_id"] is not None else (None, row["token_id"])
        if key not in owners:
            owners[key] = len(people)
            people.append(Owner(row["staff_id"], row["token_id"], row["staff_name"]))
        tracks.extend(parts)
        track_owner.extend([owners[key]] * len(parts))
        patrols_of.setdefault(owners[key], set()).add(int(row["id"]))
    result = patrol_coverage(
        micro_geoms,
        footprints,
        tracks,
        np.asarray(track_owner, dtype=np.int64),
        len(people),
        buffer_m=buffer,
        street_buffer_m=settings.street_buffer_m,
    )
    records = [index.records[p] for p in micro_positions]
    grid = index.records[index.by_code[grid_code]]
    by_staff = []
    for row_index, person in enumerate(people):
        if mine_only and not owns(principal, person.token_id, person.staff_id):
            continue
        by_staff.append(
            {
                "staff_id": person.staff_id,
                "staff_name": person.staff_name,
                "token_id": person.token_id if person.staff_id is None else None,
                "patrols": len(patrols_of[row_index]),
                **_summary(result, np.array([row_index])),
            }
        )
    head = {
        "grid": {"code": grid.code, "name": grid.name, "level": grid.level},
        "from": first.isoformat(),
        "to": last.isoformat(),
        "buffer_m": buffer,
        "street_buffer_m": settings.street_buffer_m,
        "patrols": len({p for ids in patrols_of.values() for p in ids}),
        "workers": len(people),
        **_summary(result, slice(None)),
        "by_staff": by_staff,
    }
    if summary:
        return {**head, "computed_at": datetime.now(UTC).isoformat()}
    visited_micro = np.asarray(result.micro_visited.any(axis=0))
    passed = np.asarray(result.buildings_passed.any(axis=0))
    not_visited = [
        {
            "type": "Feature",
            "geometry": mapping(geometry),
            "properties": {"kind": "micro_grid", "code": record.code, "name": record.name},
        }
        for record, geometry, seen in zip(records, micro_geoms, visited_micro, strict=True)
        if not seen
    ]
    not_visited += [
        {
            "type": "Feature",
            "geometry": mapping(footprint),
            "properties": {
                "kind": "building",
                "code": building["code"],
                "name": building["name"],
                "address": building["address"],
            },
        }
        for building, footprint, seen in zip(buildings, footprints, passed, strict=True)
        if not seen
    ]
    if not result.streets_not_walked.is_empty:
        not_visited.append(
            {
                "type": "Feature",
                "geometry": mapping(result.streets_not_walked),
                "properties": {"kind": "street"},
            }
        )
    return {
        **head,
        "micro_grid_visits": [
            {"code": record.code, "name": record.name, "visits": int(visits)}
            for record, visits in zip(records, result.micro_visits, strict=True)
        ],
        "not_visited": {"type": "FeatureCollection", "features": not_visited},
        "computed_at": datetime.now(UTC).isoformat(),
    }
