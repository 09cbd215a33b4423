"""Domain errors, and the one place that turns them into HTTP responses.

Every error body has the same shape:
    {"error": {"code": "invalid_bbox", "message": "…", "where": "query.bbox", "details": [...]}}
`code` is stable and English (other systems branch on it); `message` is for people (Chinese);
`where` names the parameter, field, file, row or feature at fault.

Deeper layers raise their own errors (`EditError`, `UnreadableFile`, `ExportError`…) and never
know about requests; `DOMAIN_ERRORS` below is the one map from those to answers, and the only
place a field a domain layer names (`geometry`) becomes where it came from (`body.geometry`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.db.generations import NoActiveGeneration
from api.lookup.points_io import PointsTooLarge, TooManyPoints, UnreadablePoints
from api.transfer.export import ExportError, NothingToExport
from api.transfer.read import UnpackedTooLarge, UnreadableFile
from api.workflow.calendar import CalendarError
from spatial.crs import UnknownCRS
from spatial.hierarchy import EditError
from spatial.partition import PartitionError

log = logging.getLogger("wangge")


class WanggeError(Exception):
    """Base of all errors a user can cause; carries its HTTP status and a stable code."""

    status = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        where: str | None = None,
        details: list[dict[str, Any]] | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.where = where
        self.details = details or []
        if code:
            self.code = code

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.where:
            error["where"] = self.where
        if self.details:
            error["details"] = self.details
        return {"error": error}


class InvalidInput(WanggeError):
    status = 422
    code = "invalid_input"


class NotFound(WanggeError):
    status = 404
    code = "not_found"


class Conflict(WanggeError):
    status = 409
    code = "conflict"


class Unauthorized(WanggeError):
    status = 401
    code = "unauthorized"


class Forbidden(WanggeError):
    status = 403
    code = "forbidden"


class PayloadTooLarge(WanggeError):
    status = 413
    code = "payload_too_large"


class Busy(WanggeError):
    status = 503
    code = "busy"


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable English code, e.g. invalid_bbox")
    message: str = Field(description="What went wrong, for people (Chinese)")
    where: str | None = Field(
        default=None, description="The parameter, field, file or row at fault"
    )
    details: list[dict[str, Any]] | None = None


class ErrorBody(BaseModel):
    """The one shape of every error answer."""

    error: ErrorDetail


_ERROR_DESCRIPTIONS = {
    400: "Unreadable request body",
    401: "No token, or an invalid, expired or revoked one",
    403: "The token's role or grid scope does not allow this",
    404: "Not found",
    409: "Conflicts with the current state (e.g. a stale draft version)",
    413: "Request body too large",
    422: "Invalid input: `where` names the parameter or field",
    503: "Busy, or the database is unreachable for a moment: retry later (Retry-After)",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for error answers a router can give, all in the one error shape.

    Errors are JSON on every route, map pages too: named here, since FastAPI would otherwise
    document them in the route's own media type (text/html for a page)."""
    json_body = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    return {
        status: {
            "model": ErrorBody,
            "description": _ERROR_DESCRIPTIONS[status],
            "content": json_body,
        }
        for status in statuses
    }


def error_response(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(status_code=status, content=body, headers=headers)


def _query_names(dependant: Dependant) -> set[str]:
    names = {parameter.alias for parameter in dependant.query_params}
    for dependency in dependant.dependencies:
        names |= _query_names(dependency)
    return names


def place_of(request: Request, field: str) -> str:
    """Where the input a domain layer calls `field` came from in this request: the path if the
    route has a path parameter of that name, else the query if it declares one, else the body."""
    if field in request.path_params:
        return f"path.{field}"
    route = request.scope.get("route")
    if isinstance(route, APIRoute) and field in _query_names(route.dependant):
        return f"query.{field}"
    return f"body.{field}"


UPLOAD = "body.file"  # every upload route takes its file as the multipart field `file`


def _edit_error(request: Request, error: EditError) -> WanggeError:
    where = place_of(request, error.field) if error.field else None
    answer = NotFound if error.code == "grid_not_found" else InvalidInput
    return answer(str(error), code=error.code, where=where)


def _partition_error(request: Request, error: PartitionError) -> WanggeError:
    # Auto-suggest is the one operation that partitions: what cannot be divided is its community.
    return InvalidInput(str(error), code="partition_failed", where=place_of(request, "community"))


def _unreadable_file(_: Request, error: UnreadableFile) -> WanggeError:
    details = [{"member": error.member}] if error.member else None
    if isinstance(error, UnpackedTooLarge):
        return PayloadTooLarge(str(error), where=UPLOAD, details=details)
    return InvalidInput(str(error), code="unreadable_file", where=UPLOAD, details=details)


def _unreadable_points(_: Request, error: UnreadablePoints) -> WanggeError:
    if isinstance(error, TooManyPoints):
        return InvalidInput(
            f"{error}；大文件请用 wangge geocode", code="too_many_points", where=UPLOAD
        )
    if isinstance(error, PointsTooLarge):
        return PayloadTooLarge(str(error), where=UPLOAD)
    return InvalidInput(str(error), code="unreadable_file", where=UPLOAD)


def _export_error(_: Request, error: ExportError) -> WanggeError:
    if isinstance(error, NothingToExport):
        return NotFound(str(error), code="nothing_to_export")
    return InvalidInput(str(error), code="invalid_export", where="query")


def _unknown_crs(_: Request, error: UnknownCRS) -> WanggeError:
    return InvalidInput(str(error), code="unknown_crs", where="crs")


def _calendar_exhausted(_: Request, error: CalendarError) -> WanggeError:
    return InvalidInput(
        f"{error}：工作日历中找不到足够的工作日（是否把太多日子设成了休息日？）",
        code="calendar_exhausted",
    )


def _no_active_generation(_: Request, error: NoActiveGeneration) -> WanggeError:
    return NotFound(f"没有生效的网格版本：{error}", code="no_active_generation")


# The one map from the errors deeper layers raise to the answer each becomes.
DOMAIN_ERRORS: dict[type[Exception], Callable[[Request, Any], WanggeError]] = {
    EditError: _edit_error,  # 404 grid_not_found, else 422 with the edit's own code
    PartitionError: _partition_error,  # 422 partition_failed
    UnreadableFile: _unreadable_file,  # 422 unreadable_file; 413 when it unpacks too large
    UnreadablePoints: _unreadable_points,  # 422 unreadable_file / too_many_points; 413
    ExportError: _export_error,  # 422 invalid_export; 404 nothing_to_export
    UnknownCRS: _unknown_crs,  # 422 unknown_crs
    NoActiveGeneration: _no_active_generation,  # 404 no_active_generation
    CalendarError: _calendar_exhausted,  # 422 calendar_exhausted
}


def _answer(error: WanggeError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(error, Unauthorized) else None
    if isinstance(error, Busy):
        headers = {"Retry-After": "5"}
    return error_response(error.status, error.body(), headers)


def _answering(
    translate: Callable[[Request, Any], WanggeError],
) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def handler(request: Request, error: Exception) -> JSONResponse:
        return _answer(translate(request, error))

    return handler


def register_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(WanggeError)
    async def _domain(_: Request, error: WanggeError) -> JSONResponse:
        return _answer(error)

    for kind, translate in DOMAIN_ERRORS.items():
        app.add_exception_handler(kind, _answering(translate))

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, error: RequestValidationError) -> JSONResponse:
        details = [
            {
                "where": ".".join(str(part) for part in item.get("loc", ())),
                "message": item.get("msg", ""),
            }
            for item in error.errors()
        ]
        where = details[0]["where"] if details else None
        return error_response(
            422,
            InvalidInput(
                "请求参数有误", code="validation_error", where=where, details=details
            ).body(),
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, error: StarletteHTTPException) -> JSONResponse:
        codes = {400: "unreadable_body", 404: "not_found", 405: "method_not_allowed"}
        message = {400: "无法解析请求体", 404: "没有这个地址", 405: "不支持该请求方法"}.get(
            error.status_code, str(error.detail)
        )
        return error_response(
            error.status_code,
            {"error": {"code": codes.get(error.status_code, "http_error"), "message": message}},
        )

    # A restart or failover of PostgreSQL, or every pooled connection busy: the request may
    # simply be retried (the writes are idempotent or were rolled back), so say so.
    @app.exception_handler(OperationalError)
    @app.exception_handler(PoolTimeout)
    async def _database_unavailable(_: Request, error: Exception) -> JSONResponse:
        log.warning("database unavailable: %s", error.__class__.__name__)
        unavailable = Busy("数据库暂时不可用，请稍后重试", code="database_unavailable")
        return error_response(503, unavailable.body(), {"Retry-After": "2"})

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=error)
        return error_response(
            500, {"error": {"code": "internal_error", "message": "服务内部错误，已记录日志"}}
        )
