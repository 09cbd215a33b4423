"""Vector tiles and OGC API – Tiles, read by real clients (GDAL's MVT and OGCAPI drivers via
pyogrio, mapbox-vector-tile) against the demo street in PostGIS."""

from __future__ import annotations

from fastapi import FastAPI

from api.app import create_app
from api.routes.tiles import router
from api.settings import Settings


def tiles_app(settings: Settings) -> FastAPI:
    """The app with the tiles router (until api/app.py includes it)."""
    app = create_app(settings)
    if not any(getattr(route, "path", "").startswith("/tiles/") for route in app.routes):
        app.include_router(router)
    return app
