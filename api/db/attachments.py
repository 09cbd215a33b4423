"""Attachment rows (photos of events); the files themselves live in api/attachments."""

from __future__ import annotations

from sqlalchemy import Connection, text


def attachment_ids(connection: Connection, event_id: int) -> set[int]:
    return set(
        connection.execute(
            text("SELECT id FROM event_attachment WHERE event_id = :id"), {"id": event_id}
        ).scalars()
    )
