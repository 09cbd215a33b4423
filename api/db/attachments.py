"""Attachment rows (photos of events); the bytes themselves live in api/attachments/storage."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, text

_COLUMNS = (
    "a.id, a.event_id, a.sha256, a.thumb_sha256, a.media_type, a.width, a.height, a.bytes, "
    "a.stage, a.lon, a.lat, a.taken_at, a.storage, a.uploaded_by, a.uploaded_at"
)


def attachment_ids(connection: Connection, event_id: int) -> set[int]:
    return set(
        connection.execute(
            text("SELECT id FROM event_attachment WHERE event_id = :id"), {"id": event_id}
        ).scalars()
    )


def event_attachments(connection: Connection, event_id: int) -> list[dict[str, Any]]:
    """An event's photos, oldest first."""
    rows = connection.execute(
        text(f"SELECT {_COLUMNS} FROM event_attachment a WHERE a.event_id = :id ORDER BY a.id"),
        {"id": event_id},
    ).mappings()
    return [dict(r) for r in rows]


def attachment(connection: Connection, attachment_id: int) -> dict[str, Any] | None:
    """One photo with what decides who may see it: its event's grid and handling unit."""
    row = (
        connection.execute(
            text(
                f"SELECT {_COLUMNS}, e.grid_code, e.unit_code FROM event_attachment a "
                "JOIN event e ON e.id = a.event_id WHERE a.id = :id"
            ),
            {"id": attachment_id},
        )
        .mappings()
        .first()
    )
    return dict(row) if row else None


def same_attachment(
    connection: Connection, event_id: int, sha256: str, stage: str
) -> dict[str, Any] | None:
    """The row a retried upload (same event, bytes and stage) already made, if any."""
    row = (
        connection.execute(
            text(
                f"SELECT {_COLUMNS} FROM event_attachment a WHERE a.event_id = :event_id "
                "AND a.sha256 = :sha256 AND a.stage = :stage ORDER BY a.id LIMIT 1"
            ),
            {"event_id": event_id, "sha256": sha256, "stage": stage},
        )
        .mappings()
        .first()
    )
    return dict(row) if row else None


def insert_attachment(connection: Connection, values: dict[str, Any]) -> dict[str, Any]:
    """Store one attachment row; returns it as read back."""
    row = (
        connection.execute(
            text(
                "INSERT INTO event_attachment AS a (event_id, sha256, thumb_sha256, media_type, "
                "width, height, bytes, stage, lon, lat, taken_at, storage, uploaded_by) VALUES "
                "(:event_id, :sha256, :thumb_sha256, :media_type, :width, :height, :bytes, "
                f":stage, :lon, :lat, :taken_at, :storage, :uploaded_by) RETURNING {_COLUMNS}"
            ),
            values,
        )
        .mappings()
        .one()
    )
    return dict(row)
