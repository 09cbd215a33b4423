"""Photos of events (处置前后照片): who may add and see them, and the order a write happens in.

An upload is checked (the event exists, is the caller's, and is not finished), cleaned
(api/attachments/images.py), its bytes and thumbnail stored content-addressed, and only then its
row and outbox notification written in one transaction that checks the event again under lock. A
failure before the commit leaves no row; it may leave an object no row names, which is harmless
(the next upload of the same bytes reuses it), never a row that names a missing object.

Photos show the event's place and often people: they are personal data of the event, served only
to callers `api/privacy.py` lets see the event's citizen data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, BinaryIO

from sqlalchemy import Connection, Engine

from api.attachments.images import EXTENSIONS, THUMBNAIL_MEDIA_TYPE, ImageRefused, clean
from api.attachments.storage import Storage, StorageUnavailable, StoredObjectMissing
from api.auth import Permission, Principal
from api.db import attachments as attachment_rows
from api.db import events as event_rows
from api.db import workflow as workflow_rows
from api.errors import (
    Busy,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
)
from api.limits import HeavyWork
from api.lookup.index_store import IndexStore
from api.privacy import Caller, public_actor
from api.settings import AttachmentSettings
from api.workflow.machine import FINISHED, LABELS_ZH, State
from api.workflow.transitions import in_scope

CHUNK_BYTES = 1 << 20
API_PREFIX = "/api/v1"


def read_capped(stream: BinaryIO, max_bytes: int) -> bytes:
    """The upload's bytes, refused with 413 as soon as they pass `max_bytes`."""
    chunks: list[bytes] = []
    size = 0
    while chunk := stream.read(CHUNK_BYTES):
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(
                f"照片超过上限 {max_bytes} 字节", code="payload_too_large", where="body.file"
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _event_not_found(event_id: int) -> NotFound:
    return NotFound(f"没有编号为 {event_id} 的事件", code="event_not_found", where="path.event_id")


def _may_add(
    event: dict[str, Any] | None, event_id: int, principal: Principal, store: IndexStore
) -> dict[str, Any]:
    if event is None:
        raise _event_not_found(event_id)
    if not in_scope(event, principal, store):
        raise Forbidden(
            "该事件不在您的网格或处置单位范围内", code="out_of_scope", where="path.event_id"
        )
    state = State(event["status"])
    if state in FINISHED:
        raise Conflict(
            f"事件已「{LABELS_ZH[state]}」，不能再添加照片",
            code="event_finished",
            where="path.event_id",
            details=[{"status": state.value}],
        )
    return event


def add_photo(
    engine: Engine,
    store: IndexStore,
    storage: Storage,
    heavy: HeavyWork,
    settings: AttachmentSettings,
    *,
    event_id: int,
    data: bytes,
    stage: str,
    principal: Principal,
) -> tuple[dict[str, Any], bool]:
    """Store one photo of an event; returns (its row as answered, whether it is new)."""
    with engine.connect() as connection:
        _may_add(event_rows.find_event(connection, event_id=event_id), event_id, principal, store)
    try:
        with heavy.slot():  # decoding a large photo is seconds of CPU and hundreds of MB
            image = clean(data, settings.max_pixels)
    except ImageRefused as refused:
        raise InvalidInput(str(refused), code=refused.code, where="body.file") from refused
    media_type = image.format.media_type
    sha256, thumb_sha256 = image.sha256, image.thumbnail_sha256
    try:
        storage.put(sha256, image.content, media_type)
        storage.put(thumb_sha256, image.thumbnail, THUMBNAIL_MEDIA_TYPE)
    except (StorageUnavailable, OSError) as error:
        raise Busy("照片存储暂不可用，请稍后重试", code="storage_unavailable") from error
    caller = Caller(principal)
    with engine.begin() as connection:
        # Again under the event's lock: it may have been closed while the photo was decoded.
        _may_add(workflow_rows.lock_event(connection, event_id), event_id, principal, store)
        existing = attachment_rows.same_attachment(connection, event_id, sha256, stage)
        if existing is not None:
            return attachment_answer(existing, caller), False
        row = attachment_rows.insert_attachment(
            connection,
            {
                "event_id": event_id,
                "sha256": sha256,
                "thumb_sha256": thumb_sha256,
                "media_type": media_type,
                "width": image.width,
                "height": image.height,
                "bytes": len(image.content),
                "stage": stage,
                "lon": image.lon,
                "lat": image.lat,
                "taken_at": image.taken_at,
                "storage": storage.writer.name,
                "uploaded_by": principal.actor,
            },
        )
        workflow_rows.enqueue(
            connection,
            "attachment",
            event_id,
            {
                "event_id": event_id,
                "attachment_id": row["id"],
                "stage": stage,
                "media_type": media_type,
                "sha256": sha256,
                "url": _urls(row["id"])["file"],
                "at": datetime.now(UTC).isoformat(),
            },
        )
    return attachment_answer(row, caller), True


def _urls(attachment_id: int) -> dict[str, str]:
    base = f"{API_PREFIX}/attachments/{attachment_id}"
    return {"file": base, "thumbnail": f"{base}/thumbnail"}


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def attachment_answer(row: dict[str, Any], caller: Caller) -> dict[str, Any]:
    return {
        "id": row["id"],
        "event_id": row["event_id"],
        "stage": row["stage"],
        "media_type": row["media_type"],
        "width": row["width"],
        "height": row["height"],
        "bytes": row["bytes"],
        "sha256": row["sha256"],
        "lon": row["lon"],
        "lat": row["lat"],
        "taken_at": _time(row["taken_at"]),
        "uploaded_at": _time(row["uploaded_at"]),
        "uploaded_by": public_actor(row["uploaded_by"], caller),
        "urls": _urls(row["id"]),
    }


def _entitled(caller: Caller, store: IndexStore, grid_code: str | None, unit: str | None) -> None:
    """Photos are the event's personal data: 401 without a token, 403 unless the rule allows."""
    principal = caller.principal
    if principal is None:
        raise Unauthorized(
            "查看事件照片需要 API 令牌（Authorization: Bearer …）",
            code="token_required",
            where="header.Authorization",
        )
    if caller.sees_event(store.active_path(grid_code), unit):
        return
    if not principal.can(Permission.read_personal):
        raise Forbidden(f"角色 {principal.role.value} 无权查看事件照片", code="insufficient_role")
    raise Forbidden("该事件不在您的网格或处置单位范围内，不能查看其照片", code="out_of_scope")


def event_photos(
    connection: Connection, store: IndexStore, event_id: int, caller: Caller
) -> dict[str, Any]:
    """The photos of one event, for a caller entitled to them."""
    if caller.principal is None:
        _entitled(caller, store, None, None)
    event = event_rows.find_event(connection, event_id=event_id)
    if event is None:
        raise _event_not_found(event_id)
    _entitled(caller, store, event["grid_code"], event["unit_code"])
    rows = attachment_rows.event_attachments(connection, event_id)
    return {
        "event_id": event_id,
        "count": len(rows),
        "attachments": [attachment_answer(row, caller) for row in rows],
    }


@dataclass(frozen=True)
class Photo:
    content: bytes
    media_type: str
    sha256: str
    extension: str


def photo(
    connection: Connection,
    store: IndexStore,
    storage: Storage,
    attachment_id: int,
    caller: Caller,
    *,
    thumbnail: bool = False,
) -> Photo:
    """One photo's bytes (or its thumbnail's), for a caller entitled to them."""
    if caller.principal is None:
        _entitled(caller, store, None, None)
    row = attachment_rows.attachment(connection, attachment_id)
    if row is None:
        raise NotFound(
            f"没有编号为 {attachment_id} 的照片",
            code="attachment_not_found",
            where="path.attachment_id",
        )
    _entitled(caller, store, row["grid_code"], row["unit_code"])
    sha256 = row["thumb_sha256"] if thumbnail else row["sha256"]
    media_type = THUMBNAIL_MEDIA_TYPE if thumbnail else row["media_type"]
    try:
        content = storage.get(row["storage"], sha256, media_type)
    except StoredObjectMissing as error:
        raise NotFound(
            f"照片 {attachment_id} 的文件不在存储中", code="attachment_file_missing"
        ) from error
    except (StorageUnavailable, OSError) as error:
        raise Busy("照片存储暂不可用，请稍后重试", code="storage_unavailable") from error
    return Photo(content, media_type, sha256, EXTENSIONS[media_type])
