"""gzip for what travels to browsers and GIS clients: map pages and their scripts, GeoJSON layers,
OGC pages and vector tiles (a district overview's tiles shrink about 3×, an OGC page of 1,000
features about 9×). Bulk lookups stay uncompressed — their callers pay per byte of CPU, not of
network, and choose their own format — and images and archives are never recompressed
(Starlette's exclusions)."""

from __future__ import annotations

from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

COMPRESSED = (
    "/ogc",
    "/tiles/",
    "/map/",
    "/m/",
    "/static/",
    "/open311/",
    "/api/v1/openapi.json",
    "/api/v1/grids",
    "/api/v1/buildings",
    "/api/v1/points",
    "/api/v1/events",
    "/api/v1/kpis",
    "/api/v1/patrols",
    "/api/v1/coverage",
    "/api/v1/drafts",
)
LEVEL = 6  # zlib's default: most of level 9's gain at a third of its CPU


class SelectiveGZip:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.gzip = GZipMiddleware(app, minimum_size=1024, compresslevel=LEVEL)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        target = self.gzip if path == "/" or path.startswith(COMPRESSED) else self.app
        await target(scope, receive, send)
