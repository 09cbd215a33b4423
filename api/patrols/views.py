"""Reading patrols: the list, and one patrol's track and fixes as GeoJSON (personal data)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection

from api.db import audit
from api.db import patrols as patrol_rows
from api.errors import Forbidden, NotFound
from api.lookup.index_store import IndexStore
from api.patrols.access import sees_all_tracks, sees_track
from api.patrols.coverage import instants, local_period
from api.patrols.service import patrol_answer, retention_start
from api.privacy import Caller
from api.settings import PatrolSettings

MAX_LIST_DAYS = 366


def list_patrols(
    connection: Connection,
    store: IndexStore,
    caller: Caller,
    *,
    staff_id: int | None,
    grid_code: str | None,
    start: date | None,
    end: date | None,
    limit: int,
    offset: int,
    settings: PatrolSettings,
) -> dict[str, Any]:
    """Patrols of the period (local days, default today), newest first: everyone's for
    supervisors, dispatchers and admins; the caller's own for everybody else."""
    principal = caller.principal
    assert principal is not None
    first, last = local_period(start, end, MAX_LIST_DAYS)
    begin, finish = instants(first, last)
    area = None
    if grid_code is not None:
        try:
            index = store.active()
        except LookupError:
            index = None
        if index is None or grid_code not in index.by_code:
            raise NotFound(
                f"没有编码为 {grid_code} 的网格", code="grid_not_found", where="query.grid"
            )
        area = index.geometries[index.by_code[grid_code]]
    mine = not sees_all_tracks(caller)
    rows, total = patrol_rows.list_patrols(
        connection,
        begin=begin,
        end=finish,
        not_before=retention_start(settings),
        owner_token=principal.token_id if mine else None,
        owner_staff=principal.staff_id if mine else None,
        staff_id=staff_id,
        area=area,
        limit=limit,
        offset=offset,
    )
    return {
        "from": first.isoformat(),
        "to": last.isoformat(),
        "total": total,
        "only_mine": mine,
        "patrols": [patrol_answer(row) for row in rows],
    }


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def patrol_geojson(
    connection: Connection, caller: Caller, patrol_id: int, settings: PatrolSettings
) -> dict[str, Any]:
    """The stored (cleaned, simplified) track as a LineString with a time per vertex, and every
    fix as recorded, with `kept` false for those the filters dropped."""
    row = patrol_rows.find_patrol(connection, patrol_id)
    if row is None or row["started_at"] < retention_start(settings):
        raise NotFound(
            f"没有编号为 {patrol_id} 的巡查", code="patrol_not_found", where="path.patrol_id"
        )
    if not sees_track(caller, row):
        raise Forbidden(
            "巡查轨迹是个人信息：仅本人、督办员、调度员和管理员可以查看",
            code="track_not_visible",
            where="path.patrol_id",
        )
    coords = patrol_rows.track_coordinates(connection, patrol_id)
    fixes = patrol_rows.patrol_fixes(connection, patrol_id)
    features: list[dict[str, Any]] = []
    if len(coords):
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "LineString", "coordinates": coords[:, :2].tolist()},
                "properties": {"kind": "track", "times": [_iso(m) for m in coords[:, 2]]},
            }
        )
    for t, lon, lat, accuracy, kept in zip(
        fixes["times"], fixes["lon"], fixes["lat"], fixes["accuracy_m"], fixes["kept"], strict=True
    ):
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [float(lon), float(lat)]},
                "properties": {
                    "kind": "fix",
                    "t": _iso(t),
                    "accuracy_m": None if accuracy != accuracy else float(accuracy),
                    "kept": bool(kept),
                },
            }
        )
    return {"type": "FeatureCollection", "patrol": patrol_answer(row), "features": features}


def purge_expired(
    connection: Connection, settings: PatrolSettings, actor: str, now: datetime | None = None
) -> dict[str, Any]:
    """Delete patrols past retention (their fixes with them), audited: what went, the cut-off."""
    before = retention_start(settings, now)
    patrols, fixes = patrol_rows.purge_before(connection, before)
    answer = {"before": before.isoformat(), "patrols": patrols, "points": fixes}
    audit.record(connection, actor, "patrols.purge", "patrol", None, answer)
    return answer
