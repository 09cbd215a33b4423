"""Typed dependencies: settings, engine, a connection, and the caller's token."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Connection, Engine
from starlette.concurrency import run_in_threadpool

from api.auth import Permission, Principal, TokenCache, resolve_token
from api.errors import Forbidden, InvalidInput, Unauthorized
from api.limits import HeavyWork
from api.lookup.index_store import IndexStore
from api.privacy import Caller
from api.settings import Settings


async def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


async def get_engine(request: Request) -> Engine:
    return request.app.state.engine


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
EngineDep = Annotated[Engine, Depends(get_engine)]


def get_connection(engine: EngineDep) -> Iterator[Connection]:
    """A read connection; writes open their own transaction so they commit before replying."""
    with engine.connect() as connection:
        yield connection


ConnectionDep = Annotated[Connection, Depends(get_connection)]


TOKEN_COOKIE = "wangge_token"  # noqa: S105 (a cookie name, not a secret)
PAGE_HEADER = "x-wangge-page"  # sent by wangge's own editor page with its same-origin writes


SAFE_METHODS = ("GET", "HEAD")


def _bearer(request: Request) -> tuple[str | None, bool]:
    """The presented secret, and whether it came from the map login cookie."""
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() == "bearer" and secret.strip():
        return secret.strip(), False
    # Map pages opened in a browser carry the token in a cookie (set by /map/login). Safe methods
    # honour it. A write honours it only with the X-Wangge-Page header, which a page on another
    # site cannot send without a CORS preflight that wangge never grants (so no CSRF).
    if request.method in SAFE_METHODS or request.headers.get(PAGE_HEADER) == "1":
        return request.cookies.get(TOKEN_COOKIE) or None, True
    return None, False


async def get_principal(request: Request) -> Principal | None:
    """The caller's token, checked against a short-lived in-memory cache, else the database.

    Async and cached because the lookup hot path must not wait on the database per request;
    it reads the engine off the app, not through a dependency, because FastAPI spends ~10 µs
    per dependency per request and every read route passes here.
    """
    secret, from_cookie = _bearer(request)
    if secret is None:
        return None
    cache: TokenCache = request.app.state.token_cache
    cached = cache.get(secret)
    if cached is not None:
        return cached

    engine: Engine = request.app.state.engine

    def resolve() -> Principal | None:
        with engine.connect() as connection:
            return resolve_token(connection, secret)

    principal = await run_in_threadpool(resolve)
    if principal is None and from_cookie and request.method in SAFE_METHODS:
        # An expired or revoked login cookie must not lock a browser out of the open pages:
        # it reads as anonymous (pages that need a token still answer 401 and offer the login).
        return None
    if principal is None:
        raise Unauthorized(
            "令牌无效、已过期或已吊销", code="invalid_token", where="header.Authorization"
        )
    cache.put(secret, principal)
    return principal


OptionalPrincipal = Annotated[Principal | None, Depends(get_principal)]


def require(permission: Permission) -> Callable[..., Awaitable[Principal]]:
    """A dependency that demands a token whose role grants `permission`."""

    async def _check(principal: OptionalPrincipal) -> Principal:
        if principal is None:
            raise Unauthorized(
                "需要 API 令牌（Authorization: Bearer …）",
                code="token_required",
                where="header.Authorization",
            )
        if not principal.can(permission):
            raise Forbidden(
                f"角色 {principal.role.value} 无权执行此操作（需要 {permission.value} 权限）",
                code="insufficient_role",
            )
        return principal

    return _check


async def read_access(request: Request, principal: OptionalPrincipal) -> Principal | None:
    """Open reads unless the deployment requires a token for them."""
    settings: Settings = request.app.state.settings
    if settings.auth.require_token_for_reads:
        return await require(Permission.read)(principal)
    return principal


ReaderDep = Annotated[Principal | None, Depends(read_access)]
PlannerDep = Annotated[Principal, Depends(require(Permission.write_grids))]
AdminDep = Annotated[Principal, Depends(require(Permission.manage_tokens))]
PersonalDataDep = Annotated[Principal, Depends(require(Permission.read_personal))]
DispatcherDep = Annotated[Principal, Depends(require(Permission.write_events))]
WorkerDep = Annotated[Principal, Depends(require(Permission.work_events))]
ReporterDep = Annotated[Principal, Depends(require(Permission.report_events))]


async def reading_caller(principal: ReaderDep) -> Caller:
    return Caller(principal)


CallerDep = Annotated[Caller, Depends(reading_caller)]


# A JSON \u0000 escape that is not itself escaped (an even run of backslashes before it).
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


async def refuse_nul_characters(request: Request) -> None:
    """PostgreSQL text cannot hold U+0000: refuse it in the path, the query or a JSON body
    (a 422 naming where), before any handler binds it to a query. Form uploads carry files,
    where a NUL byte is ordinary."""
    places = [("path", request.path_params.items()), ("query", request.query_params.multi_items())]
    for place, items in places:
        for name, value in items:
            if "\x00" in str(value):
                raise InvalidInput(
                    "参数不能包含 NUL 字符（U+0000）", code="nul_character", where=f"{place}.{name}"
                )
    form = request.headers.get("content-type", "").startswith(("multipart/", "application/x-www"))
    if not form and _JSON_NUL.search(await request.body()):
        raise InvalidInput("请求体不能包含 NUL 字符（\\u0000）", code="nul_character", where="body")


NoNulCharacters = Depends(refuse_nul_characters)


async def get_heavy(request: Request) -> HeavyWork:
    return request.app.state.heavy


HeavyDep = Annotated[HeavyWork, Depends(get_heavy)]


async def get_index_store(request: Request) -> IndexStore:
    """This worker's lookup index (built in the app's lifespan, kept current by LISTEN/NOTIFY)."""
    return request.app.state.index_store


IndexStoreDep = Annotated[IndexStore, Depends(get_index_store)]
