"""Pages from Jinja2 templates (autoescape on), with their nonce, ETag and cache headers."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import folium
import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse, Response

WEB_ROOT = Path(__file__).resolve().parent
TEMPLATES = WEB_ROOT / "templates"
ASSETS = WEB_ROOT / "assets"

ENVIRONMENT = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
# One path segment of a URL: a code with "/" or "?" in it stays one segment.
ENVIRONMENT.filters["segment"] = lambda value: quote(str(value), safe="")
# Pages revalidate every time (they show live counts); private: some show personal data.
CACHE_CONTROL = "no-cache, private"


def _build_id() -> str:
    """Templates, scripts and folium's version: a deployment that changes them changes ETags."""
    digest = hashlib.sha256(folium.__version__.encode())
    for folder in (TEMPLATES, ASSETS):
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


BUILD = _build_id()


def page_etag(*parts: Any) -> str:
    """A strong ETag from whatever a page is made of (JSON-able parts; bytes are hashed)."""
    digest = hashlib.sha256(BUILD.encode())
    for part in parts:
        if isinstance(part, bytes):
            digest.update(part)
        else:
            digest.update(json.dumps(part, sort_keys=True, default=str).encode())
        digest.update(b"\0")
    return f'"{digest.hexdigest()[:32]}"'


def not_modified(request: Request, etag: str) -> Response | None:
    """A bodiless 304 when the browser already holds this version of the page."""
    sent = request.headers.get("if-none-match", "")
    tags = {tag.strip().removeprefix("W/") for tag in sent.split(",")}
    if etag in tags or "*" in tags:
        return Response(status_code=304, headers={"ETag": etag, "Cache-Control": CACHE_CONTROL})
    return None


def page(
    request: Request,
    template: str,
    *,
    etag: str | None = None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """Render a page with this response's CSP nonce (made by web.security.PageSecurityHeaders)."""
    html = ENVIRONMENT.get_template(template).render(csp_nonce=request.state.csp_nonce, **context)
    headers = {"Cache-Control": CACHE_CONTROL}
    if etag:
        headers["ETag"] = etag
    return HTMLResponse(html, status_code=status_code, headers=headers)
