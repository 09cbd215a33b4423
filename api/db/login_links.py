"""Sign-in link rows (login_link): only the SHA-256 of a link's code is stored, never the code."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, text

# A link with its token and the person the token names: what the confirm page shows and what
# signing in checks. `now` comes from the database, the clock every expiry was written with.
_LINK_QUERY = (
    "SELECT l.id, l.token_id, l.created_at, l.expires_at, l.used_at, l.revoked_at, now() AS now, "
    "t.name AS token_name, t.role, t.grid_codes, t.unit_code, t.staff_id, s.name AS staff_name, "
    "t.revoked_at AS token_revoked_at, t.expires_at AS token_expires_at "
    "FROM login_link l JOIN api_token t ON t.id = l.token_id "
    "LEFT JOIN staff s ON s.id = t.staff_id "
)


def token_row(connection: Connection, token_id: int) -> Row[Any] | None:
    """The token a new link would sign in with (revoked and expired ones too: the caller says why)."""
    return connection.execute(
        text(
            "SELECT id, name, role, expires_at, revoked_at, now() AS now "
            "FROM api_token WHERE id = :id"
        ),
        {"id": token_id},
    ).first()


def insert_link(
    connection: Connection,
    *,
    digest: str,
    token_id: int,
    expires_at: datetime,
    created_by: str,
) -> int:
    return int(
        connection.execute(
            text(
                "INSERT INTO login_link (code_sha256, token_id, expires_at, created_by) "
                "VALUES (:digest, :token, :expires, :by) RETURNING id"
            ),
            {"digest": digest, "token": token_id, "expires": expires_at, "by": created_by},
        ).scalar_one()
    )


def link_by_digest(connection: Connection, digest: str, *, lock: bool = False) -> Row[Any] | None:
    """The link with this code digest, its token and person; `lock` holds the link row until
    commit, so two phones signing in with one link at once are served one after the other."""
    suffix = " FOR UPDATE OF l" if lock else ""
    return connection.execute(
        text(_LINK_QUERY + "WHERE l.code_sha256 = :digest" + suffix), {"digest": digest}
    ).first()


def mark_used(connection: Connection, link_id: int) -> None:
    """Record the first use (a later use inside the grace period keeps the first moment)."""
    connection.execute(
        text("UPDATE login_link SET used_at = COALESCE(used_at, now()) WHERE id = :id"),
        {"id": link_id},
    )


def replace_token_secret(connection: Connection, token_id: int, digest: str, prefix: str) -> None:
    """Give the token a new secret: the one just handed to the phone (the old one stops working)."""
    connection.execute(
        text("UPDATE api_token SET token_sha256 = :digest, prefix = :prefix WHERE id = :id"),
        {"digest": digest, "prefix": prefix, "id": token_id},
    )


def links_of(connection: Connection, token_id: int) -> list[Row[Any]]:
    return list(
        connection.execute(
            text(_LINK_QUERY + "WHERE l.token_id = :token ORDER BY l.id"), {"token": token_id}
        )
    )


def revoke(connection: Connection, link_id: int) -> bool:
    """Mark a link revoked; False when it was unknown or already revoked."""
    done = connection.execute(
        text("UPDATE login_link SET revoked_at = now() WHERE id = :id AND revoked_at IS NULL"),
        {"id": link_id},
    ).rowcount
    return bool(done)


def revoke_for_token(connection: Connection, token_id: int) -> int:
    """Revoke every link of a token still open (when the token itself is revoked)."""
    return int(
        connection.execute(
            text(
                "UPDATE login_link SET revoked_at = now() "
                "WHERE token_id = :token AND revoked_at IS NULL"
            ),
            {"token": token_id},
        ).rowcount
    )
