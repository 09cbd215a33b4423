"""The map login (a token kept in a cookie for map pages), the home page and the favicon."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.auth import resolve_token
from api.deps import TOKEN_COOKIE, EngineDep
from api.errors import Forbidden, error_responses
from web.render import page
from web.security import local_target

router = APIRouter(tags=["map pages"], responses=error_responses(401, 403, 404, 422, 503))


FAVICON = (
    "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 64 64'><rect width='64' height='64' rx='12' "
    "fill='#2b6cb0'/><path d='M12 22h40M12 42h40M22 12v40M42 12v40' stroke='#fff' stroke-width='5'/></svg>"
)


@router.get("/favicon.ico", include_in_schema=False)
def favicon() -> Response:
    return Response(FAVICON, media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"})


@router.get(
    "/map/login",
    response_class=HTMLResponse,
    summary="登录: keep an API token in a cookie for map pages",
)
def login_form(request: Request, next: str = "/map/street") -> HTMLResponse:
    return page(request, "login.html", next=local_target(next), failed=False)


@router.post(
    "/map/login", response_class=HTMLResponse, summary="登录: check the token and set the cookie"
)
def login(
    request: Request,
    engine: EngineDep,
    token: Annotated[str, Form()],
    next: Annotated[str, Form()] = "/map/street",
) -> Response:
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
        # Login CSRF: another site must not sign a browser in with the attacker's token.
        raise Forbidden("登录请求来自其他网站", code="cross_site_login", where="header.Origin")
    with engine.connect() as connection:
        principal = resolve_token(connection, token.strip())
    if principal is None:
        return page(request, "login.html", status_code=401, next=local_target(next), failed=True)
    response = RedirectResponse(local_target(next), status_code=303)
    response.set_cookie(
        TOKEN_COOKIE,
        token.strip(),
        httponly=True,
        samesite="strict",
        max_age=12 * 3600,
        secure=request.app.state.settings.mode == "prod",
    )
    return response


@router.get("/", include_in_schema=False)
def home() -> RedirectResponse:
    return RedirectResponse("/map/street")
