"""API token rows: only a token's SHA-256 is stored, never the secret."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, text


def known_grid_codes(connection: Connection, codes: list[str]) -> set[str]:
    """Which of `codes` name a grid in any generation."""
    return set(
        connection.execute(
            text("SELECT DISTINCT code FROM grid WHERE code = ANY(:codes)"), {"codes": codes}
        ).scalars()
    )


def known_unit(connection: Connection, code: str) -> bool:
    return (
        connection.execute(
            text("SELECT 1 FROM handling_unit WHERE code = :code AND active"), {"code": code}
        ).first()
        is not None
    )


def known_staff(connection: Connection, staff_id: int) -> bool:
    return (
        connection.execute(
            text("SELECT 1 FROM staff WHERE id = :id AND active"), {"id": staff_id}
        ).first()
        is not None
    )


def insert_token(
    connection: Connection,
    *,
    name: str,
    digest: str,
    prefix: str,
    role: str,
    grid_codes: list[str],
    unit_code: str | None,
    staff_id: int | None,
    expires_at: datetime | None,
) -> int:
    return int(
        connection.execute(
            text(
                "INSERT INTO api_token (name, token_sha256, prefix, role, grid_codes, unit_code, "
                "staff_id, expires_at) VALUES (:name, :digest, :prefix, :role, :codes, :unit, "
                ":staff, :expires) RETURNING id"
            ),
            {
                "name": name,
                "digest": digest,
                "prefix": prefix,
                "role": role,
                "codes": grid_codes,
                "unit": unit_code,
                "staff": staff_id,
                "expires": expires_at,
            },
        ).scalar_one()
    )


def valid_token(connection: Connection, digest: str) -> Row[Any] | None:
    """id, name, role and grid_codes of the token with this digest, unless revoked or expired."""
    return connection.execute(
        text(
            "SELECT id, name, role, grid_codes, unit_code, staff_id FROM api_token WHERE token_sha256 = :digest "
            "AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())"
        ),
        {"digest": digest},
    ).first()


def revoke(connection: Connection, token_id: int) -> bool:
    """Mark a token revoked; False when it was unknown or already revoked."""
    done = connection.execute(
        text("UPDATE api_token SET revoked_at = now() WHERE id = :id AND revoked_at IS NULL"),
        {"id": token_id},
    ).rowcount
    return bool(done)


def token_rows(connection: Connection) -> list[dict[str, Any]]:
    rows = connection.execute(
        text(
            "SELECT id, name, prefix, role, grid_codes, unit_code, staff_id, created_at, expires_at, revoked_at "
            "FROM api_token ORDER BY id"
        )
    ).mappings()
    return [dict(row) for row in rows]


def staff_name(connection: Connection, staff_id: int) -> str | None:
    return connection.execute(
        text("SELECT name FROM staff WHERE id = :id"), {"id": staff_id}
    ).scalar()
