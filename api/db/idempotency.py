"""Idempotency keys: the first answer to an action a client may send again (a phone's offline
queue replaying after the network returns). Keys are per token; only the answer is kept."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Connection, text


def hold(connection: Connection, token_id: int, key: str) -> dict[str, Any] | None:
    """Serialise requests with this key (until the transaction ends) and return the stored answer
    ({request_sha256, status, response}) when there is one."""
    connection.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:scope, 0))"),
        {"scope": f"idempotency:{token_id}:{key}"},
    )
    row = (
        connection.execute(
            text(
                "SELECT request_sha256, status, response FROM idempotency_key "
                "WHERE token_id = :token AND key = :key"
            ),
            {"token": token_id, "key": key},
        )
        .mappings()
        .first()
    )
    return dict(row) if row else None


def remember(
    connection: Connection,
    token_id: int,
    key: str,
    request_sha256: str,
    status: int,
    response: dict[str, Any],
) -> None:
    connection.execute(
        text(
            "INSERT INTO idempotency_key (key, token_id, request_sha256, status, response) "
            "VALUES (:key, :token, :digest, :status, CAST(:response AS jsonb))"
        ),
        {
            "key": key,
            "token": token_id,
            "digest": request_sha256,
            "status": status,
            "response": orjson.dumps(response).decode(),
        },
    )
