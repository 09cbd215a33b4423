"""Patrols (巡查): start, fixes, stop, upload a GPX/GeoJSON track; list, one track, coverage."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Path, Query, UploadFile
from fastapi.responses import JSONResponse

from api.auth import Permission, Principal
from api.deps import (
    ConnectionDep,
    EngineDep,
    IndexStoreDep,
    NoNulCharacters,
    SettingsDep,
    WorkerDep,
    require,
)
from api.errors import PayloadTooLarge, error_responses
from api.patrols.coverage import coverage_report
from api.patrols.service import (
    FixBatch,
    PatrolStart,
    PatrolStop,
    add_points,
    start_patrol,
    stop_patrol,
    upload_track,
)
from api.patrols.views import list_patrols, patrol_geojson
from api.privacy import Caller

router = APIRouter(
    tags=["patrols"],
    responses=error_responses(400, 401, 403, 404, 409, 413, 422, 503),
    dependencies=[NoNulCharacters],
)
MAX_ID = 2**63 - 1
PatrolId = Annotated[int, Path(ge=1, le=MAX_ID)]
TokenDep = Annotated[Principal, Depends(require(Permission.read))]
CHUNK_BYTES = 1024 * 1024
From = Annotated[date | None, Query(alias="from", description="First local day (default: today)")]
To = Annotated[
    date | None, Query(alias="to", description="Last local day, inclusive (default: from)")
]
GridCode = Annotated[str, Query(min_length=1, max_length=64, description="Grid code, any level")]
StaffId = Annotated[int | None, Query(ge=1, le=MAX_ID, description="Only this staff member's")]


@router.post(
    "/patrols",
    status_code=201,
    summary="Start a patrol (巡查) on the phone: idempotent on client_id per token",
    description=(
        '`{"client_id": "<uuid made by the phone>", "started_at": "<ISO time with offset>"}`. '
        "The patrol belongs to the token and, when the token names a person, to that staff "
        "member. The same start again (the offline queue replaying) answers 200 with the same "
        "patrol; the same client_id with another start time 409 `client_id_reused`. Needs "
        "`work_events`."
    ),
    responses={201: {"description": "Started"}, 200: {"description": "Already started"}},
)
def start(
    body: PatrolStart, engine: EngineDep, settings: SettingsDep, principal: WorkerDep
) -> JSONResponse:
    answer, created = start_patrol(engine, principal, body, settings.patrols)
    return JSONResponse(status_code=201 if created else 200, content=answer)


@router.post(
    "/patrols/upload",
    status_code=201,
    summary="A finished patrol from a GPX or GeoJSON track file (times on every fix)",
    description=(
        "Multipart: `file` (GPX 1.0/1.1 tracks or routes; GeoJSON LineString/MultiLineString "
        "with `properties.times` / `coordTimes` or a fourth coordinate in epoch seconds, or "
        "Point features with `properties.time`; WGS84) and optionally `client_id` (default: the "
        "file's SHA-256, so the same file again answers 200 with the same patrol). Cleaned and "
        "simplified like a phone's fixes; times going backwards within a segment, swapped "
        "lon/lat or positions outside China answer 422 naming the point. Over "
        "`WANGGE_PATROLS__MAX_UPLOAD_BYTES` 413."
    ),
    responses={201: {"description": "Stored"}, 200: {"description": "Already stored"}},
)
def upload(
    file: Annotated[UploadFile, File(description="GPX or GeoJSON")],
    engine: EngineDep,
    store: IndexStoreDep,
    settings: SettingsDep,
    principal: WorkerDep,
    client_id: Annotated[str | None, Form(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")] = None,
) -> JSONResponse:
    limit = settings.patrols.max_upload_bytes
    chunks, size = [], 0
    while chunk := file.file.read(CHUNK_BYTES):
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"轨迹文件超过上限 {limit} 字节", where="body.file")
        chunks.append(chunk)
    answer, created = upload_track(
        engine, store, principal, b"".join(chunks), client_id, settings.patrols
    )
    return JSONResponse(status_code=201 if created else 200, content=answer)


@router.post(
    "/patrols/{patrol_id}/points",
    summary="Add a batch of fixes (≤ 5,000; WGS84): idempotent by time",
    description=(
        '`{"points": [{"t", "lon", "lat", "accuracy_m"?}, …]}`. Times must go forward within '
        "the batch; batches may arrive in any order (offline sync). A fix already stored for "
        "that moment is a duplicate and changes nothing. Answers `added`, `duplicates` and "
        "`dropped` (added fixes the accuracy or speed filter dropped) and the patrol. The whole "
        "batch is refused (422, naming the point) if any position is not a number, looks like "
        "swapped lon/lat, lies outside China, or a time goes backwards. Only the patrol's owner."
    ),
)
def points(
    patrol_id: PatrolId,
    batch: FixBatch,
    engine: EngineDep,
    store: IndexStoreDep,
    settings: SettingsDep,
    principal: WorkerDep,
) -> dict[str, Any]:
    return add_points(engine, store, principal, patrol_id, batch, settings.patrols)


@router.post(
    "/patrols/{patrol_id}/stop",
    summary="End a patrol (the same stop again answers the same; another end time 409)",
)
def stop(
    patrol_id: PatrolId, body: PatrolStop, engine: EngineDep, principal: WorkerDep
) -> dict[str, Any]:
    return stop_patrol(engine, principal, patrol_id, body)


@router.get(
    "/patrols",
    summary="Patrols of a period: everyone's for supervisors, dispatchers, admins; else one's own",
)
def patrols(
    connection: ConnectionDep,
    store: IndexStoreDep,
    settings: SettingsDep,
    principal: TokenDep,
    start: From = None,
    end: To = None,
    staff: StaffId = None,
    grid: Annotated[
        str | None, Query(min_length=1, max_length=64, description="Tracks crossing this grid")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> dict[str, Any]:
    return list_patrols(
        connection,
        store,
        Caller(principal),
        staff_id=staff,
        grid_code=grid,
        start=start,
        end=end,
        limit=limit,
        offset=offset,
        settings=settings.patrols,
    )


@router.get(
    "/patrols/coverage",
    summary="Patrol coverage (巡查覆盖率) of a grid: micro-grids entered, buildings passed, streets walked",
    description=(
        "For local days [from, to] (default today, at most 31 days): the share of the grid's "
        "micro-grids a track touched or crossed, of its buildings a track passed within "
        "`buffer_m` (default `WANGGE_PATROLS__BUFFER_M`, 30 m), and of its street length "
        "(the union of its micro-grids' edges) a track ran within `street_buffer_m`; per worker "
        "(`by_staff`) and in all; visits per micro-grid; and what nobody visited as GeoJSON "
        "(`not_visited`: micro-grids, buildings, street lines). Supervisors, dispatchers and "
        "admins: any grid; field staff: their own grids, with their own row only. "
        "`summary=true`: the same figures (`micro_grids`, `buildings`, `streets`, `by_staff`, "
        "`patrols`, `workers`) without `micro_grid_visits` and `not_visited` — a street's "
        "not-visited GeoJSON is megabytes (20,000 building footprints); a dashboard asks this."
    ),
)
def coverage(
    connection: ConnectionDep,
    store: IndexStoreDep,
    settings: SettingsDep,
    principal: TokenDep,
    grid: GridCode,
    start: From = None,
    end: To = None,
    staff: StaffId = None,
    buffer_m: Annotated[float | None, Query(gt=0, le=500)] = None,
    summary: Annotated[
        bool, Query(description="Figures only: no micro_grid_visits, no not_visited GeoJSON")
    ] = False,
) -> dict[str, Any]:
    return coverage_report(
        connection,
        store,
        Caller(principal),
        grid_code=grid,
        start=start,
        end=end,
        staff_id=staff,
        buffer_m=buffer_m,
        settings=settings.patrols,
        summary=summary,
    )


@router.get(
    "/patrols/{patrol_id}",
    summary="One patrol: its track (LineString, a time per vertex) and fixes (personal data)",
    responses={200: {"content": {"application/geo+json": {}}}},
)
def patrol(
    patrol_id: PatrolId, connection: ConnectionDep, settings: SettingsDep, principal: TokenDep
) -> dict[str, Any]:
    return patrol_geojson(connection, Caller(principal), patrol_id, settings.patrols)
