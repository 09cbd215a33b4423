"""Sign-in links and their QR codes: a phone signs in by scanning, nobody types a token.

A link is `<public_url>/m/login#<code>`: the code (144 random bits, URL-safe) rides in the URL
fragment, which a browser never sends to a server. So no access log, proxy log or Referer header
ever holds it; the page's script reads it and posts it in a request body. Only the code's SHA-256
is stored, like a token's.

Signing in hands the token to the phone: the token gets a new secret, set in the phone's HttpOnly
cookie, and the old secret stops working (tokens keep one secret, and only its hash, so there is
no other way to give a phone the token without storing the secret). The phone keeps the token's
id, so its offline queue (idempotency keys are per token) and "my tasks" survive a new sign-in,
and a new link scanned on a new phone signs the lost one out.

Reuse: a link works from creation until it expires (default 7 days, at most 30, never beyond its
token) and, once used, for REUSE_MINUTES more: long enough to sign in again when WeChat's in-app
browser hands over to the phone's own browser or a first try fails, too short for a photo of the
QR code taken later to be worth anything. A phone that loses its cookie later gets a new link.
"""

from __future__ import annotations

import base64
import hashlib
import io
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import segno
from sqlalchemy import Connection, Row

from api.auth import TOKEN_PREFIX, Role
from api.db import audit
from api.db import login_links as link_rows
from api.errors import Conflict, InvalidInput, NotFound, WanggeError

DEFAULT_DAYS = 7
MAX_DAYS = 30
REUSE_MINUTES = 10  # after the first sign-in: a second try, or another browser on the same phone
COOKIE_DAYS = 30  # how long a phone stays signed in (never beyond the token's own expiry)
CODE_BYTES = 18  # 144 random bits → 24 URL-safe characters
LOGIN_PATH = "/m/login"

ROLE_LABELS = {
    Role.admin: "管理员",
    Role.planner: "规划员",
    Role.dispatcher: "调度员",
    Role.supervisor: "督办员",
    Role.handler: "处置人员",
    Role.field_staff: "网格员",
    Role.viewer: "只读用户",
}

# Why a link cannot be used, worded for the person holding the phone.
GONE_MESSAGES = {
    "revoked": "此登录链接已被吊销，请向管理员索取新的二维码",
    "token_revoked": "此登录链接所属的令牌已被吊销，请联系管理员",
    "token_expired": "此登录链接所属的令牌已过期，请联系管理员",
    "expired": "此登录链接已过期，请向管理员索取新的二维码",
    "spent": "此登录链接已使用过，请向管理员索取新的二维码",
}


class LinkGone(WanggeError):
    """A link that existed but can no longer sign anyone in (410 Gone)."""

    status = 410
    code = "login_link_gone"


def unknown_link(where: str) -> NotFound:
    return NotFound(
        "登录链接无效：请确认扫描的是管理员发给您的二维码",
        code="login_link_unknown",
        where=where,
    )


@dataclass(frozen=True)
class IssuedLink:
    id: int
    token_id: int
    code: str  # shown once, inside login_url
    login_url: str
    expires_at: datetime

    def qr_png_base64(self) -> str:
        return base64.b64encode(qr_png(self.login_url)).decode("ascii")


@dataclass(frozen=True)
class SignIn:
    token_id: int
    secret: str  # the token's new secret, for the phone's cookie only
    cookie_seconds: int


def digest(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def login_url(public_url: str, code: str) -> str:
    return f"{public_url.rstrip('/')}{LOGIN_PATH}#{code}"


def qr_png(url: str, scale: int = 8) -> bytes:
    """The QR code of `url` as a PNG (error correction M: still reads when a little smudged)."""
    buffer = io.BytesIO()
    segno.make(url, error="m", micro=False).save(buffer, kind="png", scale=scale, border=4)
    return buffer.getvalue()


def qr_text(url: str) -> str:
    """The QR code of `url` in Unicode half blocks, for a terminal (light modules drawn)."""
    out = io.StringIO()
    segno.make(url, error="m", micro=False).terminal(out=out, compact=True)
    return out.getvalue()


def issue_link(
    connection: Connection,
    token_id: int,
    *,
    public_url: str,
    actor: str,
    days: int = DEFAULT_DAYS,
    where: str = "path.token_id",
) -> IssuedLink:
    """A new link for a valid token, expiring in `days` (never after the token)."""
    if not 1 <= days <= MAX_DAYS:
        raise InvalidInput(
            f"登录链接有效期须在 1 到 {MAX_DAYS} 天之间",
            code="invalid_link_days",
            where="link_days",
        )
    token = link_rows.token_row(connection, token_id)
    if token is None:
        raise NotFound(f"没有编号为 {token_id} 的令牌", code="token_not_found", where=where)
    if token.revoked_at is not None or (
        token.expires_at is not None and token.expires_at <= token.now
    ):
        raise Conflict(
            f"令牌 {token_id} 已吊销或已过期，不能再为它生成登录链接",
            code="token_not_valid",
            where=where,
        )
    expires_at = token.now + timedelta(days=days)
    if token.expires_at is not None:
        expires_at = min(expires_at, token.expires_at)
    code = secrets.token_urlsafe(CODE_BYTES)
    link_id = link_rows.insert_link(
        connection, digest=digest(code), token_id=token_id, expires_at=expires_at, created_by=actor
    )
    audit.record(
        connection,
        actor,
        "login_link.create",
        "login_link",
        str(link_id),
        {"token_id": token_id, "expires_at": expires_at.isoformat()},
    )
    return IssuedLink(link_id, token_id, code, login_url(public_url, code), expires_at)


def link_state(row: Row[Any]) -> str:
    """active, in_use (signed in, still reusable for a few minutes), or why it is gone."""
    if row.revoked_at is not None:
        return "revoked"
    if row.token_revoked_at is not None:
        return "token_revoked"
    if row.token_expires_at is not None and row.token_expires_at <= row.now:
        return "token_expired"
    if row.expires_at <= row.now:
        return "expired"
    if row.used_at is None:
        return "active"
    if row.now < row.used_at + timedelta(minutes=REUSE_MINUTES):
        return "in_use"
    return "spent"


def _usable(connection: Connection, code: str, *, lock: bool, where: str) -> Row[Any]:
    row = link_rows.link_by_digest(connection, digest(code), lock=lock) if code else None
    if row is None:
        raise unknown_link(where)
    state = link_state(row)
    if state in GONE_MESSAGES:
        raise LinkGone(GONE_MESSAGES[state], code=f"login_link_{state}", where=where)
    return row


def sign_in_label(row: Row[Any]) -> str:
    """ "登录为 张三（网格员，网格 …）": who the phone will be once signed in."""
    role = Role(row.role)
    name = row.staff_name or row.token_name
    parts = [ROLE_LABELS[role]]
    if row.grid_codes:
        parts.append("网格 " + "、".join(row.grid_codes))
    if row.unit_code:
        parts.append("单位 " + row.unit_code)
    return f"登录为 {name}（{'，'.join(parts)}）"


def preview(connection: Connection, code: str, *, where: str = "body.code") -> dict[str, Any]:
    """What a usable link signs in as (for the confirm page); nothing changes."""
    row = _usable(connection, code, lock=False, where=where)
    return {
        "label": sign_in_label(row),
        "name": row.staff_name or row.token_name,
        "role": row.role,
        "role_label": ROLE_LABELS[Role(row.role)],
        "grid_codes": list(row.grid_codes or ()),
        "unit_code": row.unit_code,
        "expires_at": row.expires_at,
    }


def redeem(connection: Connection, code: str, *, where: str = "body.code") -> SignIn:
    """Sign a phone in: the token's new secret for its cookie. Call inside a transaction."""
    row = _usable(connection, code, lock=True, where=where)
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    link_rows.replace_token_secret(
        connection, row.token_id, hashlib.sha256(secret.encode()).hexdigest(), secret[:10]
    )
    link_rows.mark_used(connection, row.id)
    audit.record(
        connection,
        f"login_link:{row.id}",
        "login_link.use",
        "api_token",
        str(row.token_id),
        {"link_id": row.id, "again": row.used_at is not None},
    )
    seconds = COOKIE_DAYS * 86400
    if row.token_expires_at is not None:
        seconds = min(seconds, int((row.token_expires_at - row.now).total_seconds()))
    return SignIn(int(row.token_id), secret, max(seconds, 1))


def link_record(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "token_id": row.token_id,
        "created_at": row.created_at,
        "expires_at": row.expires_at,
        "used_at": row.used_at,
        "revoked_at": row.revoked_at,
        "state": link_state(row),
    }


def list_links(connection: Connection, token_id: int) -> list[dict[str, Any]]:
    if link_rows.token_row(connection, token_id) is None:
        raise NotFound(
            f"没有编号为 {token_id} 的令牌", code="token_not_found", where="path.token_id"
        )
    return [link_record(row) for row in link_rows.links_of(connection, token_id)]


def revoke_link(connection: Connection, link_id: int, actor: str) -> bool:
    done = link_rows.revoke(connection, link_id)
    if done:
        audit.record(connection, actor, "login_link.revoke", "login_link", str(link_id))
    return done
