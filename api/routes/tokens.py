"""Token management (admin only)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from api.auth import Role, create_token, list_tokens, revoke_token
from api.deps import AdminDep, EngineDep, NoNulCharacters, SettingsDep
from api.errors import InvalidInput, NotFound, error_responses
from api.login_links import DEFAULT_DAYS, MAX_DAYS, IssuedLink, issue_link
from api.times import Instant

router = APIRouter(
    tags=["tokens"],
    responses=error_responses(400, 401, 403, 404, 413, 422, 503),
    dependencies=[NoNulCharacters],
)


class TokenRequest(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    role: Role
    grid_codes: list[str] = Field(default_factory=list, max_length=1000)
    unit_code: str | None = Field(
        default=None, max_length=32, description="handler tokens: the handling unit"
    )
    staff_id: int | None = Field(
        default=None, ge=1, description="the person the token belongs to (field staff: my tasks)"
    )
    expires_at: Instant | None = None
    qr: bool = Field(default=False, description="also a sign-in link and its QR code")
    link_days: int = Field(
        default=DEFAULT_DAYS, ge=1, le=MAX_DAYS, description="with qr: days until the link expires"
    )


@router.post(
    "/tokens",
    status_code=201,
    responses=error_responses(409),  # qr with a token already expired
    summary="Create a token (the secret is shown once; with qr, a sign-in link too)",
)
def create(
    body: TokenRequest, engine: EngineDep, settings: SettingsDep, admin: AdminDep
) -> dict[str, Any]:
    link: IssuedLink | None = None
    try:
        with engine.begin() as connection:
            created = create_token(
                connection,
                name=body.name,
                role=body.role,
                grid_codes=tuple(body.grid_codes),
                unit_code=body.unit_code or None,  # "" names no unit (not a missing one)
                staff_id=body.staff_id,
                expires_at=body.expires_at,
                actor=admin.actor,
            )
            if body.qr:
                link = issue_link(
                    connection,
                    created.id,
                    public_url=settings.public_url,
                    actor=admin.actor,
                    days=body.link_days,
                )
    except (ValueError, LookupError) as error:
        raise InvalidInput(
            str(error),
            code="invalid_token_request",
            where="body.unit_code"
            if "unit" in str(error)
            else "body.staff_id"
            if "staff" in str(error)
            else "body.grid_codes",
        ) from error
    answer: dict[str, Any] = {
        "id": created.id,
        "token": created.secret,
        "role": created.role.value,
        "grid_codes": list(created.grid_codes),
        "unit_code": created.unit_code,
        "staff_id": body.staff_id,
    }
    if link is not None:
        answer |= {
            "login_url": link.login_url,
            "qr_png": link.qr_png_base64(),
            "link_expires_at": link.expires_at,
        }
    return answer


@router.get("/tokens", summary="List tokens (never their secrets)")
def index(engine: EngineDep, _: AdminDep) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        return list_tokens(connection)


@router.delete("/tokens/{token_id}", status_code=204, summary="Revoke a token")
def revoke(token_id: int, request: Request, engine: EngineDep, admin: AdminDep) -> None:
    with engine.begin() as connection:
        if not revoke_token(connection, token_id, admin.actor):
            raise NotFound(
                f"没有编号为 {token_id} 的有效令牌", code="token_not_found", where="path.token_id"
            )
    request.app.state.token_cache.clear()  # after the commit, so nothing re-caches it meanwhile
