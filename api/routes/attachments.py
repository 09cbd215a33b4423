"""Photos of events (处置前后照片) and monitoring-point alerts (监控点告警 → 事件)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Path, Request, UploadFile
from fastapi.responses import JSONResponse, Response

from api.alerts import AlertIn, receive_alert
from api.attachments.service import add_photo, event_photos, photo, read_capped
from api.attachments.storage import Storage, open_storage
from api.deps import (
    CallerDep,
    ConnectionDep,
    DispatcherDep,
    EngineDep,
    HeavyDep,
    IndexStoreDep,
    NoNulCharacters,
    SettingsDep,
    WorkerDep,
)
from api.errors import error_responses
from api.privacy import Caller
from api.routes.events import outcome_answer

router = APIRouter(
    tags=["attachments"],
    responses=error_responses(400, 401, 403, 404, 409, 413, 422, 503),
    dependencies=[NoNulCharacters],
)
MAX_ID = 2**63 - 1
RowId = Annotated[int, Path(ge=1, le=MAX_ID)]
IMAGE_TYPES: dict[str, Any] = {"image/jpeg": {}, "image/png": {}, "image/webp": {}}


def attachment_storage(request: Request, settings: SettingsDep) -> Storage:
    """One storage per app (a boto3 client is made once and shared by threads)."""
    state = request.app.state
    if getattr(state, "attachment_storage", None) is None:
        state.attachment_storage = open_storage(settings.attachments)
    return state.attachment_storage


@router.post(
    "/events/{event_id}/attachments",
    status_code=201,
    summary="Add a photo to an event (处置前后照片): JPEG, PNG or WebP, metadata stripped",
    description=(
        "Multipart: `file` (JPEG, PNG or WebP; HEIC, GIF, SVG, PDF are refused with 422) and "
        "`stage` (before, after or other). The photo is decoded with Pillow, turned upright, "
        "and re-encoded without EXIF or any other metadata; the EXIF GPS position (WGS84) and "
        "DateTimeOriginal are kept as `lon`, `lat`, `taken_at`. Same bytes and stage again: the "
        "stored photo, 200. Needs `work_events` and the event in the caller's grids or unit; a "
        "finished event answers 409 `event_finished`. Use the `id` in the `handle` transition's "
        "`photos`."
    ),
    responses={201: {"description": "Stored"}, 200: {"description": "Already stored"}},
)
def upload_photo(
    event_id: RowId,
    file: Annotated[UploadFile, File(description="The photo: JPEG, PNG or WebP")],
    request: Request,
    engine: EngineDep,
    store: IndexStoreDep,
    settings: SettingsDep,
    heavy: HeavyDep,
    principal: WorkerDep,
    stage: Annotated[Literal["before", "after", "other"], Form()] = "other",
) -> JSONResponse:
    limits = settings.attachments
    data = read_capped(file.file, limits.max_bytes)
    answer, created = add_photo(
        engine,
        store,
        attachment_storage(request, settings),
        heavy,
        limits,
        event_id=event_id,
        data=data,
        stage=stage,
        principal=principal,
    )
    return JSONResponse(status_code=201 if created else 200, content=answer)


@router.get(
    "/events/{event_id}/attachments",
    summary="An event's photos (only for callers who may see the event's personal data)",
)
def list_photos(
    event_id: RowId, connection: ConnectionDep, store: IndexStoreDep, caller: CallerDep
) -> dict[str, Any]:
    return event_photos(connection, store, event_id, caller)


def _photo_response(request: Request, content: bytes, media_type: str, sha256: str, name: str):
    headers = {
        "ETag": f'"{sha256}"',
        "Cache-Control": "private, no-cache",  # revalidated each time: access is checked again
        "X-Content-Type-Options": "nosniff",
        "Content-Disposition": f'inline; filename="{name}"',
    }
    asked = request.headers.get("if-none-match", "")
    tags = {tag.strip().removeprefix("W/").strip('"') for tag in asked.split(",")}
    if sha256 in tags or "*" in tags:
        return Response(status_code=304, headers=headers)
    return Response(content=content, media_type=media_type, headers=headers)


def _serve(
    request: Request,
    attachment_id: int,
    connection: ConnectionDep,
    store: IndexStoreDep,
    storage: Storage,
    caller: Caller,
    thumbnail: bool,
) -> Response:
    found = photo(connection, store, storage, attachment_id, caller, thumbnail=thumbnail)
    suffix = "-thumbnail" if thumbnail else ""
    name = f"{attachment_id}{suffix}.{found.extension}"
    return _photo_response(request, found.content, found.media_type, found.sha256, name)


@router.get(
    "/attachments/{attachment_id}",
    summary="One photo (ETag = its SHA-256; only for callers who may see the event's personal data)",
    response_class=Response,
    responses={200: {"content": IMAGE_TYPES}, 304: {"description": "Not modified"}},
)
def get_photo(
    attachment_id: RowId,
    request: Request,
    connection: ConnectionDep,
    store: IndexStoreDep,
    settings: SettingsDep,
    caller: CallerDep,
) -> Response:
    storage = attachment_storage(request, settings)
    return _serve(request, attachment_id, connection, store, storage, caller, thumbnail=False)


@router.get(
    "/attachments/{attachment_id}/thumbnail",
    summary="A photo's thumbnail (WebP, at most 320 px on its long side)",
    response_class=Response,
    responses={200: {"content": {"image/webp": {}}}, 304: {"description": "Not modified"}},
)
def get_thumbnail(
    attachment_id: RowId,
    request: Request,
    connection: ConnectionDep,
    store: IndexStoreDep,
    settings: SettingsDep,
    caller: CallerDep,
) -> Response:
    storage = attachment_storage(request, settings)
    return _serve(request, attachment_id, connection, store, storage, caller, thumbnail=True)


@router.post(
    "/points/{code}/alerts",
    summary="A camera or sensor alert becomes an event at the point's position (监控点告警)",
    description=(
        'Body: `{"alert_id", "category_code"?, "description"?, "kind"?: "video"|"sensor", "at"?}`. '
        "The event's source is `video` (cameras) or `sensor`, its external id "
        "`<point code>:<alert_id>`: a retried alert answers 200 with the same event, a different "
        "alert under the same id 409. Answers like POST /events (201 / 200 / 409 / 422). Needs "
        "`write_events`: a video platform posts with a dispatcher token."
    ),
    responses={
        201: {"description": "Created"},
        409: {"description": "Same alert_id, different alert"},
    },
)
def post_alert(
    code: Annotated[str, Path(min_length=1, max_length=64)],
    alert: AlertIn,
    engine: EngineDep,
    store: IndexStoreDep,
    settings: SettingsDep,
    principal: DispatcherDep,
) -> JSONResponse:
    outcome = receive_alert(
        engine, store, code, alert, principal=principal, settings=settings.workflow
    )
    return outcome_answer(outcome)
