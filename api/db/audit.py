"""The audit log: who changed what, when. Written in the same transaction as the change."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.expression import bindparam


def record(
    connection: Connection,
    actor: str,
    action: str,
    entity: str,
    entity_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    connection.execute(
        text(
            "INSERT INTO audit_log (actor, action, entity, entity_id, details) "
            "VALUES (:actor, :action, :entity, :entity_id, :details)"
        ).bindparams(bindparam("details", type_=JSONB)),
        {
            "actor": actor,
            "action": action,
            "entity": entity,
            "entity_id": entity_id,
            "details": details or {},
        },
    )
