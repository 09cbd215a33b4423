"""Sign-in links (QR codes) for existing tokens (admin only)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.deps import AdminDep, EngineDep, NoNulCharacters, SettingsDep
from api.errors import ErrorBody, NotFound, error_responses
from api.login_links import DEFAULT_DAYS, MAX_DAYS, issue_link, list_links, revoke_link

router = APIRouter(
    tags=["tokens"],
    responses=error_responses(400, 401, 403, 404, 422, 503),
    dependencies=[NoNulCharacters],
)


class LinkRequest(BaseModel):
    link_days: int = Field(
        default=DEFAULT_DAYS, ge=1, le=MAX_DAYS, description="days until the link expires"
    )


class IssuedLinkOut(BaseModel):
    id: int
    token_id: int
    login_url: str = Field(description="shown once: the code in its #fragment is not stored")
    qr_png: str = Field(description="the login URL as a QR code, PNG, base64")
    link_expires_at: datetime


class LinkOut(BaseModel):
    id: int
    token_id: int
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    revoked_at: datetime | None
    state: str = Field(
        description="active, in_use (used, reusable for a few minutes), spent, expired, "
        "revoked, token_revoked or token_expired"
    )


@router.post(
    "/tokens/{token_id}/links",
    status_code=201,
    response_model=IssuedLinkOut,
    responses={409: {"model": ErrorBody, "description": "The token is revoked or expired"}},
    summary="A new sign-in link (QR code) for a valid token",
)
def create_link(
    token_id: int,
    engine: EngineDep,
    settings: SettingsDep,
    admin: AdminDep,
    body: LinkRequest | None = None,
) -> dict[str, Any]:
    days = (body or LinkRequest()).link_days
    with engine.begin() as connection:
        link = issue_link(
            connection, token_id, public_url=settings.public_url, actor=admin.actor, days=days
        )
    return {
        "id": link.id,
        "token_id": link.token_id,
        "login_url": link.login_url,
        "qr_png": link.qr_png_base64(),
        "link_expires_at": link.expires_at,
    }


@router.get(
    "/tokens/{token_id}/links",
    response_model=list[LinkOut],
    summary="A token's sign-in links (never their codes)",
)
def index(token_id: int, engine: EngineDep, _: AdminDep) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        return list_links(connection, token_id)


@router.delete("/login-links/{link_id}", status_code=204, summary="Revoke a sign-in link")
def revoke(link_id: int, engine: EngineDep, admin: AdminDep) -> None:
    with engine.begin() as connection:
        if not revoke_link(connection, link_id, admin.actor):
            raise NotFound(
                f"没有编号为 {link_id} 的未吊销登录链接",
                code="login_link_not_found",
                where="path.link_id",
            )
