"""Open311 GeoReport v2 under /open311/v2/ (issue 12 §3): other civic systems post and follow
tickets here. Every resource ends in .json or .xml; errors are the spec's own documents
([{"code", "description"}] / <errors><error>…), never wangge's error shape. Not in the OpenAPI
schema: the spec is the contract (README, Open311)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.concurrency import run_in_threadpool
from starlette.routing import Match

from api.deps import EngineDep, IndexStoreDep, SettingsDep
from api.errors import DOMAIN_ERRORS, WanggeError
from api.open311 import service
from api.open311.access import check_jurisdiction, key_principal
from api.open311.formats import FORMATS, MEDIA_TYPES, Format, Open311Error, render, render_error
from api.open311.intake import post_request
from api.open311.params import Params
from api.open311.service import Document
from api.privacy import Caller

router = APIRouter(prefix="/open311/v2", tags=["open311"], include_in_schema=False)
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _respond(
    fmt: Format, status: int, content: bytes, headers: dict[str, str] | None = None
) -> Response:
    return Response(content, status_code=status, media_type=MEDIA_TYPES[fmt], headers=headers)


def _as_open311(request: Request, error: Exception) -> Open311Error | None:
    """A wangge error raised below (no active grids, a bad geometry …) in the spec's terms."""
    for kind, translate in DOMAIN_ERRORS.items():
        if isinstance(error, kind):
            error = translate(request, error)
    if isinstance(error, WanggeError):
        status = {401: 403, 422: 400}.get(error.status, error.status)
        return Open311Error(status, error.message)
    return None


async def _serve(request: Request, fmt: str, work: Callable[[], Document]) -> Response:
    if fmt not in FORMATS:
        return _respond(
            "json",
            404,
            render_error(
                "json",
                Open311Error(404, f"format {fmt!r}: use .json or .xml / 仅支持 .json 或 .xml"),
            ),
        )
    chosen: Format = "json" if fmt == "json" else "xml"
    try:
        document = await run_in_threadpool(work)
    except Open311Error as error:
        return _respond(chosen, error.status, render_error(chosen, error))
    except (OperationalError, PoolTimeout):
        busy = Open311Error(503, "database unavailable, retry later / 数据库暂时不可用，请稍后重试")
        return _respond(chosen, 503, render_error(chosen, busy), {"Retry-After": "2"})
    except Exception as error:
        translated = _as_open311(request, error)
        if translated is None:
            raise
        return _respond(chosen, translated.status, render_error(chosen, translated))
    body = render(chosen, document.root, document.body, document.item)
    return _respond(chosen, document.status, body)


def _query(request: Request) -> Params:
    return Params(request.query_params.multi_items())


def _reader(params: Params, engine: EngineDep, settings: SettingsDep) -> Caller:
    """The reading caller: the token behind an api_key, if one is given (api/privacy.py)."""
    check_jurisdiction(params, settings)
    return Caller(key_principal(engine, params, settings, writing=False))


@router.get("/discovery.{fmt}")
async def discovery(fmt: str, request: Request, settings: SettingsDep) -> Response:
    url = f"{request.base_url}open311/v2"
    return await _serve(request, fmt, lambda: service.discovery(url, settings))


@router.get("/services.{fmt}")
async def services(
    fmt: str, request: Request, engine: EngineDep, settings: SettingsDep
) -> Response:
    def work() -> Document:
        _reader(_query(request), engine, settings)
        with engine.connect() as connection:
            return service.services(connection)

    return await _serve(request, fmt, work)


@router.get("/services/{service_code}.{fmt}")
async def service_definition(
    service_code: str, fmt: str, request: Request, engine: EngineDep, settings: SettingsDep
) -> Response:
    def work() -> Document:
        _reader(_query(request), engine, settings)
        with engine.connect() as connection:
            return service.service_definition(connection, service_code)

    return await _serve(request, fmt, work)


@router.post("/requests.{fmt}")
async def post_requests(
    fmt: str, request: Request, engine: EngineDep, store: IndexStoreDep, settings: SettingsDep
) -> Response:
    content_type = request.headers.get("content-type", "")
    items: list[tuple[str, object]] = list(request.query_params.multi_items())
    problem = None
    if content_type.startswith(FORM_TYPES):
        try:
            form = await request.form()
            items += form.multi_items()
        except Exception:  # python-multipart's many parse errors: all mean an unreadable body
            problem = "unreadable form body / 无法解析表单"
    elif await request.body():
        problem = (
            "send application/x-www-form-urlencoded / 请以 application/x-www-form-urlencoded 提交"
        )

    def work() -> Document:
        if problem:
            raise Open311Error(400, problem)
        return post_request(engine, store, settings, Params(items))

    return await _serve(request, fmt, work)


@router.get("/requests.{fmt}")
async def get_requests(
    fmt: str, request: Request, engine: EngineDep, store: IndexStoreDep, settings: SettingsDep
) -> Response:
    def work() -> Document:
        params = _query(request)
        caller = _reader(params, engine, settings)
        with engine.connect() as connection:
            return service.requests(connection, store, params, caller)

    return await _serve(request, fmt, work)


@router.get("/requests/{service_request_id}.{fmt}")
async def get_request(
    service_request_id: str,
    fmt: str,
    request: Request,
    engine: EngineDep,
    store: IndexStoreDep,
    settings: SettingsDep,
) -> Response:
    def work() -> Document:
        caller = _reader(_query(request), engine, settings)
        with engine.connect() as connection:
            return service.request(connection, store, service_request_id, caller)

    return await _serve(request, fmt, work)


@router.get("/tokens/{token}.{fmt}")
async def get_token(
    token: str, fmt: str, request: Request, engine: EngineDep, settings: SettingsDep
) -> Response:
    def work() -> Document:
        _reader(_query(request), engine, settings)
        with engine.connect() as connection:
            return service.token(connection, token)

    return await _serve(request, fmt, work)


@router.api_route("/{rest:path}", methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"])
async def elsewhere(rest: str, request: Request) -> Response:
    """Anything else under /open311/v2/: 405 for a resource's wrong method, else 404."""
    fmt: Format = "xml" if rest.endswith(".xml") else "json"
    scope = {**request.scope, "method": request.method}
    known = any(
        route.matches(scope)[0] == Match.PARTIAL
        for route in router.routes
        if getattr(route, "endpoint", None) is not elsewhere
    )
    if known:
        error = Open311Error(405, f"{request.method} is not allowed here / 不支持该请求方法")
        return _respond(fmt, 405, render_error(fmt, error))
    error = Open311Error(
        404, "no such resource: see discovery.json / 没有这个资源，请参阅 discovery.json"
    )
    return _respond(fmt, 404, render_error(fmt, error))
