"""Recording patrols (巡查): start, fixes in batches from the phone's queue, stop, file upload.

Everything a phone sends may arrive twice or late (offline queue): a patrol is idempotent on
its client_id per token, a fix on (patrol, time). Batches may come in any order; within one
batch times must go forward. After every change the whole patrol is cleaned again in time order
(spatial.patrol: accuracy and speed filters) and its simplified LINESTRING M rewritten, so a
late batch lands where it belongs. A batch is stored whole or not at all.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import numpy as np
from pydantic import AfterValidator, BaseModel, Field
from sqlalchemy import Connection, Engine

from api.auth import Principal
from api.db import patrols as patrol_rows
from api.errors import Conflict, Forbidden, InvalidInput, NotFound
from api.lookup.index_store import IndexStore
from api.patrols.access import owns
from api.patrols.files import TrackFile, TrackFileError, read_track_file
from api.settings import PatrolSettings
from api.times import in_utc
from spatial.lookup import NO_GRID
from spatial.patrol import clean_fixes, fix_problems, simplify_track, track_wkt

MAX_BATCH = 5000
CLOCK_SKEW = timedelta(minutes=5)  # a phone's clock may run this far ahead of ours
EARLY_FIX = timedelta(minutes=1)  # a first fix may predate the start button by this much
UPLOAD = "body.file"


def _aware(value: datetime) -> datetime:
    if value.utcoffset() is None:
        raise ValueError("时间须带时区，例如 2024-05-01T08:00:00+08:00 或 …Z")
    return in_utc(value)


AwareInstant = Annotated[datetime, AfterValidator(_aware)]
ClientId = Annotated[
    str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$", description="Made by the phone (a UUID)")
]


class PatrolStart(BaseModel):
    client_id: ClientId
    started_at: AwareInstant


class Fix(BaseModel):
    t: AwareInstant
    lon: float
    lat: float
    accuracy_m: float | None = Field(default=None, ge=0, le=1_000_000)


class FixBatch(BaseModel):
    points: list[Fix] = Field(min_length=1, max_length=MAX_BATCH)


class PatrolStop(BaseModel):
    ended_at: AwareInstant


def patrol_answer(row: dict[str, Any]) -> dict[str, Any]:
    """A patrol as the API shows it (to those who may see it)."""
    return {
        "id": row["id"],
        "client_id": row["client_id"],
        "token_id": row["token_id"],
        "staff_id": row["staff_id"],
        "staff_name": row["staff_name"],
        "grid_code": row["grid_code"],
        "source": row["source"],
        "started_at": row["started_at"].isoformat(),
        "ended_at": row["ended_at"].isoformat() if row["ended_at"] else None,
        "points": row["points"],
        "dropped_points": row["dropped_points"],
        "length_m": round(row["length_m"], 1) if row["length_m"] is not None else None,
    }


def retention_start(settings: PatrolSettings, now: datetime | None = None) -> datetime:
    """Patrols that started before this are past retention (deleted by `wangge patrols purge`)."""
    return (now or datetime.now(UTC)) - timedelta(days=settings.retention_days)


def _check_start(started_at: datetime, settings: PatrolSettings, where: str) -> None:
    now = datetime.now(UTC)
    if started_at > now + CLOCK_SKEW:
        raise InvalidInput("开始时间在将来（请检查手机时间）", code="time_in_future", where=where)
    if started_at < retention_start(settings, now):
        raise InvalidInput(
            f"开始时间早于轨迹保存期限（{settings.retention_days} 天）：不再接收",
            code="beyond_retention",
            where=where,
        )


def start_patrol(
    engine: Engine, principal: Principal, body: PatrolStart, settings: PatrolSettings
) -> tuple[dict[str, Any], bool]:
    """(patrol, created): a replay of the same start answers the same patrol."""
    _check_start(body.started_at, settings, "body.started_at")
    with engine.begin() as connection:
        row, created = patrol_rows.insert_patrol(
            connection,
            client_id=body.client_id,
            token_id=principal.token_id,
            staff_id=principal.staff_id,
            source="phone",
            started_at=body.started_at,
        )
    if not created and row["started_at"] != body.started_at:
        raise Conflict(
            f"client_id {body.client_id} 已用于另一次巡查（开始时间不同）",
            code="client_id_reused",
            where="body.client_id",
        )
    return patrol_answer(row), created


def _own_patrol(connection: Connection, patrol_id: int, principal: Principal) -> dict[str, Any]:
    row = patrol_rows.find_patrol(connection, patrol_id, lock=True)
    if row is None:
        raise NotFound(
            f"没有编号为 {patrol_id} 的巡查", code="patrol_not_found", where="path.patrol_id"
        )
    if not owns(principal, row["token_id"], row["staff_id"]):
        raise Forbidden(
            "只能给自己的巡查添加轨迹点或结束它", code="not_your_patrol", where="path.patrol_id"
        )
    return row


def _main_grid(store: IndexStore, lon: np.ndarray, lat: np.ndarray) -> str | None:
    """The grid most kept fixes fall in: the parent of their micro-grid (a leaf without a
    parent is its own grid)."""
    try:
        index = store.active()
    except LookupError:
        return None
    found = index.locate(lon, lat)
    codes = [index.records[i].parent_code or index.records[i].code for i in found if i != NO_GRID]
    return Counter(codes).most_common(1)[0][0] if codes else None


def rebuild_track(
    connection: Connection, store: IndexStore, patrol_id: int, settings: PatrolSettings
) -> dict[str, np.ndarray]:
    """Clean all fixes of a patrol in time order, mark the dropped ones, store the simplified
    track, its length and grid. Returns the fixes with their new `kept`."""
    fixes = patrol_rows.patrol_fixes(connection, patrol_id)
    cleaning = clean_fixes(
        fixes["times"],
        fixes["lon"],
        fixes["lat"],
        fixes["accuracy_m"],
        max_speed_mps=settings.max_speed_mps,
        max_accuracy_m=settings.max_accuracy_m,
    )
    kept = cleaning.kept
    if (kept != fixes["kept"]).any():
        patrol_rows.set_dropped(connection, patrol_id, fixes["times"][~kept].tolist())
    lon, lat, times = fixes["lon"][kept], fixes["lat"][kept], fixes["times"][kept]
    indices, length_m = simplify_track(lon, lat, settings.simplify_m)
    patrol_rows.update_track(
        connection,
        patrol_id,
        points=len(kept),
        dropped=int((~kept).sum()),
        length_m=length_m,
        track_wkt=track_wkt(lon[indices], lat[indices], times[indices]),
        grid_code=_main_grid(store, lon, lat),
    )
    return {**fixes, "kept": kept}


def _refuse_problems(times: np.ndarray, lon: np.ndarray, lat: np.ndarray, where: str) -> None:
    problems = fix_problems(times, lon, lat)
    if problems:
        first = problems[0]
        raise InvalidInput(
            first.message + (f"（另有 {len(problems) - 1} 个问题）" if len(problems) > 1 else ""),
            code=first.code,
            where=f"{where}[{first.index}]" if where != UPLOAD else UPLOAD,
            details=[
                {"index": p.index, "code": p.code, "message": p.message} for p in problems[:50]
            ],
        )


def _window(row: dict[str, Any], times: list[datetime]) -> None:
    """Fixes belong between the patrol's start and its end (or now)."""
    latest = (row["ended_at"] + EARLY_FIX) if row["ended_at"] else datetime.now(UTC) + CLOCK_SKEW
    for i, moment in enumerate(times):
        if moment < row["started_at"] - EARLY_FIX:
            raise InvalidInput(
                f"第 {i} 个点的时间 {moment.isoformat()} 早于巡查开始 {row['started_at'].isoformat()}",
                code="point_before_start",
                where=f"body.points[{i}].t",
            )
        if moment > latest:
            code, said = (
                ("point_after_end", "晚于巡查结束")
                if row["ended_at"]
                else ("time_in_future", "在将来")
            )
            raise InvalidInput(
                f"第 {i} 个点的时间 {moment.isoformat()} {said}",
                code=code,
                where=f"body.points[{i}].t",
            )


def add_points(
    engine: Engine,
    store: IndexStore,
    principal: Principal,
    patrol_id: int,
    batch: FixBatch,
    settings: PatrolSettings,
) -> dict[str, Any]:
    """Store a batch of fixes: how many were added, were already there, and were dropped."""
    moments = [fix.t for fix in batch.points]
    times = np.array([moment.timestamp() for moment in moments])
    lon = np.array([fix.lon for fix in batch.points])
    lat = np.array([fix.lat for fix in batch.points])
    _refuse_problems(times, lon, lat, "body.points")
    with engine.begin() as connection:
        row = _own_patrol(connection, patrol_id, principal)
        _window(row, moments)
        added = patrol_rows.insert_points(
            connection, patrol_id, moments, lon, lat, [fix.accuracy_m for fix in batch.points]
        )
        dropped = 0
        if added:
            fixes = rebuild_track(connection, store, patrol_id, settings)
            new = np.isin(
                _microseconds(fixes["times"]), _microseconds([m.timestamp() for m in added])
            )
            dropped = int((new & ~fixes["kept"]).sum())
        answer = patrol_answer(patrol_rows.find_patrol(connection, patrol_id) or row)
    return {
        "patrol": answer,
        "received": len(batch.points),
        "added": len(added),
        "duplicates": len(batch.points) - len(added),
        "dropped": dropped,
    }


def _microseconds(seconds: Any) -> np.ndarray:
    """Epoch seconds as whole microseconds, so times read back from the database compare exactly."""
    return np.round(np.asarray(seconds, dtype=float) * 1e6).astype(np.int64)


def stop_patrol(
    engine: Engine, principal: Principal, patrol_id: int, body: PatrolStop
) -> dict[str, Any]:
    """End a patrol; the same stop again answers the same, a different end time 409."""
    with engine.begin() as connection:
        row = _own_patrol(connection, patrol_id, principal)
        if row["ended_at"] is not None:
            if row["ended_at"] != body.ended_at:
                raise Conflict(
                    f"该巡查已于 {row['ended_at'].isoformat()} 结束",
                    code="patrol_stopped",
                    where="body.ended_at",
                )
            return patrol_answer(row)
        if body.ended_at < row["started_at"]:
            raise InvalidInput(
                "结束时间早于开始时间", code="ended_before_start", where="body.ended_at"
            )
        if body.ended_at > datetime.now(UTC) + CLOCK_SKEW:
            raise InvalidInput(
                "结束时间在将来（请检查手机时间）", code="time_in_future", where="body.ended_at"
            )
        last = patrol_rows.last_fix_at(connection, patrol_id)
        if last is not None and body.ended_at < last:
            raise InvalidInput(
                f"结束时间早于已记录的最后一个点（{last.isoformat()}）",
                code="ended_before_last_fix",
                where="body.ended_at",
            )
        patrol_rows.set_ended(connection, patrol_id, body.ended_at)
        return patrol_answer(patrol_rows.find_patrol(connection, patrol_id) or row)


def _file_fixes(track: TrackFile) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All parts' fixes in time order, each part checked in the file's order first."""
    for part in track.parts:
        _refuse_problems(np.array(part.times), np.array(part.lon), np.array(part.lat), UPLOAD)
    times = np.concatenate([part.times for part in track.parts])
    order = np.argsort(times, kind="stable")
    times = times[order]
    first = np.r_[True, np.diff(times) > 0]  # one fix per moment: the first one the file gives
    picked = order[first]
    columns = [
        np.concatenate([getattr(part, name) for part in track.parts])
        for name in ("lon", "lat", "accuracy_m")
    ]
    return times[first], columns[0][picked], columns[1][picked], columns[2][picked]


def upload_track(
    engine: Engine,
    store: IndexStore,
    principal: Principal,
    data: bytes,
    client_id: str | None,
    settings: PatrolSettings,
) -> tuple[dict[str, Any], bool]:
    """A finished patrol from a GPX or GeoJSON file; the same file again is the same patrol."""
    try:
        track = read_track_file(data)
    except TrackFileError as error:
        raise InvalidInput(
            str(error),
            code=error.code,
            where=UPLOAD,
            details=[error.details] if error.details else None,
        ) from error
    times, lon, lat, accuracy = _file_fixes(track)
    started = datetime.fromtimestamp(float(times[0]), UTC)
    ended = datetime.fromtimestamp(float(times[-1]), UTC)
    _check_start(started, settings, UPLOAD)
    if ended > datetime.now(UTC) + CLOCK_SKEW:
        raise InvalidInput("轨迹的时间在将来", code="time_in_future", where=UPLOAD)
    digest = hashlib.sha256(data).hexdigest()
    with engine.begin() as connection:
        row, created = patrol_rows.insert_patrol(
            connection,
            client_id=client_id or f"file:{digest[:40]}",
            token_id=principal.token_id,
            staff_id=principal.staff_id,
            source=track.source,
            started_at=started,
            ended_at=ended,
        )
        if not created:
            if (row["started_at"], row["ended_at"], row["points"]) != (started, ended, len(times)):
                raise Conflict(
                    "该 client_id 已用于另一条轨迹", code="client_id_reused", where="body.client_id"
                )
            return patrol_answer(row), False
        moments = [datetime.fromtimestamp(float(t), UTC) for t in times]
        accuracies = [None if np.isnan(a) else float(a) for a in accuracy]
        patrol_rows.insert_points(connection, row["id"], moments, lon, lat, accuracies)
        rebuild_track(connection, store, row["id"], settings)
        return patrol_answer(patrol_rows.find_patrol(connection, row["id"]) or row), True
