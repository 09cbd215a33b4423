"""OGC exception JSON for everything under /ogc and /tiles, in our error shape as well.

An OGC client reads `code` and `description` (OGC API Common's exception schema, RFC 7807's
`status` and `title` too); our own clients keep reading `error.code`, `error.message` and
`error.where`. Both are in every body. A bad query parameter of a read (GET/HEAD) is a 400 here,
as OGC API Features requires, where the rest of the API answers 422. `install(app)` wraps the
handlers `api.errors.register_error_handlers` registered, so there is still one map from errors to
answers; it only reshapes the answer on these paths.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

PREFIXES = ("/ogc", "/tiles")
READS = ("GET", "HEAD")


def ogc_body(status: int, ours: dict[str, Any]) -> dict[str, Any]:
    """The OGC exception fields next to our `error` object."""
    error = ours.get("error", {}) if isinstance(ours, dict) else {}
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    body: dict[str, Any] = {
        "code": error.get("code", "error"),
        "description": error.get("message", title),
        "status": status,
        "title": title,
    }
    if error.get("where"):
        body["where"] = error["where"]
    body["error"] = error
    return body


def _reshape(request: Request, response: Response) -> Response:
    if not request.url.path.startswith(PREFIXES) or response.status_code < 400:
        return response
    try:
        ours = json.loads(bytes(response.body))
    except (ValueError, AttributeError):
        ours = {"error": {"code": "error", "message": HTTPStatus(response.status_code).phrase}}
    status = response.status_code
    if status == 422 and request.method in READS:
        status = 400
    headers = {
        name: value
        for name, value in response.headers.items()
        if name.lower() not in ("content-length", "content-type")
    }
    return JSONResponse(ogc_body(status, ours), status_code=status, headers=headers)


def _wrap(handler: Callable[..., Any]) -> Callable[..., Any]:
    async def wrapped(request: Request, error: Exception) -> Response:
        response = handler(request, error)
        if inspect.isawaitable(response):
            response = await response
        return _reshape(request, response)

    return wrapped


def install(app: FastAPI) -> None:
    """Reshape every registered error answer on /ogc and /tiles (call after the error handlers
    are registered, before the app starts)."""
    if getattr(app.state, "ogc_errors_installed", False):
        return
    app.state.ogc_errors_installed = True
    for key, handler in list(app.exception_handlers.items()):
        app.exception_handlers[key] = _wrap(handler)
