"""Serve wangge with a timed request log, to see what QGIS (or GDAL) asks of /ogc.

    cd /work/main && .venv/bin/python docs/qgis/serve_ogc.py --port 8093

`wangge serve` is the normal way to run the service; this launcher is the same `create_app()`
plus one log line per request: method, path and query, status, milliseconds, bytes, the Accept
header and the User-Agent (QGIS says `Mozilla/5.0 QGIS/32216`; GDAL sends none).
"""

from __future__ import annotations

import argparse
import logging
import time

import uvicorn
from fastapi import FastAPI, Request

from api.app import create_app

LOG_FORMAT = "%(asctime)s %(message)s"


log = logging.getLogger("qgis.requests")


def build_app() -> FastAPI:
    app = create_app()

    @app.middleware("http")
    async def timed(request: Request, call_next):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        response = await call_next(request)
        milliseconds = (time.perf_counter() - started) * 1000
        query = f"?{request.url.query}" if request.url.query else ""
        log.info(
            "%s %s%s -> %s %.0f ms %s bytes [%s | %s]",
            request.method,
            request.url.path,
            query,
            response.status_code,
            milliseconds,
            response.headers.get("content-length", "?"),
            request.headers.get("accept", ""),
            request.headers.get("user-agent", ""),
        )
        return response

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8093)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    # Our own timed line per request (uvicorn's access log has no duration, accept or agent).
    uvicorn.run(build_app(), host=args.host, port=args.port, access_log=False)


if __name__ == "__main__":
    main()
