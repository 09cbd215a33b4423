"""The FastAPI application, built by a factory from a settings object."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

from api.auth import TokenCache
from api.compression import SelectiveGZip
from api.db.engine import make_engine
from api.errors import register_error_handlers
from api.limits import BodySizeLimit, HeavyWork, TrustedHosts
from api.lookup.index_store import IndexStore
from api.ogc import errors as ogc_errors
from api.ogc.http import HeadAndVary
from api.outbox import Sweeper
from api.replica import open_read_source
from api.routes import (
    attachments,
    coverage,
    draft_rebase,
    drafts,
    event_location,
    events,
    geocode,
    geocode_aliases,
    grids,
    health,
    layers,
    levels,
    login_links,
    lookup,
    me,
    ogc,
    ogc_edit,
    open311,
    outbox,
    patrols,
    tiles,
    tokens,
    transfer,
    workflow,
)
from api.settings import Settings, get_settings
from web import pages

API_PREFIX = "/api/v1"
OPENAPI = f"{API_PREFIX}/openapi.json"
SWAGGER = "/static/vendor/swagger-ui-dist"  # npm, like every page asset (works offline)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.engine = make_engine(settings)
        app.state.read_source = open_read_source(settings, app.state.engine)
        app.state.index_store = IndexStore(app.state.engine, app.state.heavy)
        app.state.index_store.start()
        app.state.sweeper = Sweeper(app.state.engine, settings)
        app.state.sweeper.start()
        try:
            yield
        finally:
            app.state.sweeper.stop()
            app.state.index_store.stop()
            app.state.read_source.dispose()
            app.state.engine.dispose()

    app = FastAPI(
        title="wangge 网格化管理 GIS 服务",
        version="0.1.0",
        description=(
            "Versioned grid hierarchy (街道 → 社区 → 网格 → 微网格), buildings, monitoring points "
            "and events on PostGIS. Errors share one JSON shape: "
            '`{"error": {"code", "message", "where", "details"}}`.'
        ),
        lifespan=lifespan,
        openapi_url=None,  # served below with an ETag: GIS clients fetch it on every layer load
        docs_url=None,  # served below from /static/vendor: FastAPI's default loads a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.token_cache = TokenCache()
    app.state.heavy = HeavyWork(settings.limits.heavy_requests)
    register_error_handlers(app)
    for module in (
        health,
        lookup,
        events,
        event_location,
        geocode,
        geocode_aliases,
        me,
        patrols,
        attachments,
        workflow,
        grids,
        layers,
        transfer,
        coverage,
        drafts,
        draft_rebase,
        levels,
        outbox,
        tokens,
        login_links,
    ):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(open311.router)
    # Open GIS standards at the root, as GIS clients expect: OGC API Features and Tiles under
    # /ogc (reads, and writes into drafts), Mapbox vector tiles and TileJSON under /tiles.
    for module in (ogc, ogc_edit, tiles):
        app.include_router(module.router)
    ogc_errors.install(app)
    pages.mount(app)

    @app.get(OPENAPI, include_in_schema=False)
    def openapi(request: Request) -> Response:
        body = _openapi_body(app)
        etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        if etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="application/json", headers=headers)

    @app.get(f"{API_PREFIX}/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=OPENAPI,
            title="wangge API 文档",
            swagger_js_url=f"{SWAGGER}/swagger-ui-bundle.js",
            swagger_css_url=f"{SWAGGER}/swagger-ui.css",
            swagger_favicon_url="/favicon.ico",
        )

    app.add_middleware(SelectiveGZip)
    app.add_middleware(HeadAndVary)
    app.add_middleware(TrustedHosts, allowed_hosts=settings.allowed_hosts)
    app.add_middleware(
        BodySizeLimit,
        default_bytes=settings.limits.max_request_bytes,
        upload_bytes=settings.limits.max_upload_bytes,
        upload_prefixes=(f"{API_PREFIX}/import",),
    )
    return app


def _openapi_body(app: FastAPI) -> bytes:
    """The OpenAPI document as bytes, built once per application (FastAPI caches the dict)."""
    body: bytes | None = getattr(app.state, "openapi_body", None)
    if body is None:
        body = app.state.openapi_body = orjson.dumps(app.openapi())
    return body
