"""扫码登录: the page a sign-in link (QR code) opens on a phone.

The link is `/m/login#<code>`. A GET only shows the page: WeChat and QR scanners fetch links
ahead of the person, so nothing may sign in on a GET, and the code is not even sent then (it is
in the fragment). The page's script posts the code to /m/login/preview to show who the phone will
be, and the person's tap posts it to /m/login, which signs in and sets the cookie as /map/login
does. Codes only ever travel in request bodies: no access log line can hold one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from api.deps import TOKEN_COOKIE, EngineDep, NoNulCharacters
from api.errors import ErrorBody, Forbidden, NotFound, error_responses
from api.login_links import LinkGone, preview, redeem
from web.render import page

HOME = "/m/"
HTML: dict[str, Any] = {"content": {"text/html": {}}}
GONE = {"model": ErrorBody, "description": "The link expired, was used up or revoked"}

router = APIRouter(
    tags=["mobile pages"],
    responses=error_responses(400, 403, 422, 503),
    dependencies=[NoNulCharacters],
)


class CodeIn(BaseModel):
    code: str = Field(
        min_length=1, max_length=100, description="the code from the link's #fragment"
    )


class LinkPreviewOut(BaseModel):
    label: str = Field(description="登录为 …（网格员，网格 …）")
    name: str
    role: str
    role_label: str
    grid_codes: list[str]
    unit_code: str | None
    expires_at: datetime


@router.get(
    "/m/login",
    response_class=HTMLResponse,
    responses={200: HTML},
    summary="扫码登录: the confirm page a sign-in link opens (never signs in itself)",
)
def login_page(request: Request) -> HTMLResponse:
    response = page(request, "m_login.html", failure=None)
    # The phone pages' service worker keeps what it sees unless told not to: never this page.
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post(
    "/m/login/preview",
    response_model=LinkPreviewOut,
    responses={**error_responses(404), 410: GONE},
    summary="扫码登录: who a sign-in link would sign the phone in as (changes nothing)",
)
def preview_link(body: CodeIn, engine: EngineDep) -> dict[str, Any]:
    with engine.connect() as connection:
        return preview(connection, body.code)


@router.post(
    "/m/login",
    response_class=HTMLResponse,
    status_code=303,
    responses={
        303: {"description": "Signed in: the cookie is set, on to /m/"},
        404: {**HTML, "description": "Unknown link (a page saying so)"},
        410: {**HTML, "description": "Expired, used-up or revoked link (a page saying so)"},
    },
    summary="扫码登录: sign this phone in with the link's code (sets the cookie)",
)
def sign_in(request: Request, engine: EngineDep, code: Annotated[str, Form()] = "") -> Response:
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
        # Login CSRF: another site must not sign a phone in as someone else.
        raise Forbidden("登录请求来自其他网站", code="cross_site_login", where="header.Origin")
    try:
        with engine.begin() as connection:
            signed = redeem(connection, code.strip())
    except (NotFound, LinkGone) as error:
        return page(request, "m_login.html", status_code=error.status, failure=error.message)
    # The token's old secret must stop working in this process now, not when the cache expires.
    request.app.state.token_cache.clear()
    response = RedirectResponse(HOME, status_code=303)
    response.set_cookie(
        TOKEN_COOKIE,
        signed.secret,
        httponly=True,
        samesite="strict",
        max_age=signed.cookie_seconds,
        secure=request.url.scheme == "https" or request.app.state.settings.mode == "prod",
    )
    return response
