"""Headers every page carries, and where a page may send the browser next.

Each page response gets a Content-Security-Policy whose script-src names a nonce made for that
response: only the `<script>` tags wangge's own templates write carry it, so text that slipped
into a page as markup still could not run. The nonce is made here, per request, and kept in
`request.state.csp_nonce` for the template.
"""

from __future__ import annotations

import logging
import re
import secrets
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

DEFAULT_NEXT = "/map/street"
API_PREFIX = "/api/"
# A host as CSP writes it: letters, digits, dots and dashes, an optional port; "*." only leftmost.
_CSP_HOST = re.compile(r"(\*\.)?[a-z0-9-]+(\.[a-z0-9-]+)*(:\d{1,5})?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def new_nonce() -> str:
    return secrets.token_urlsafe(18)


def tile_sources(urls: list[str]) -> list[str]:
    """The img-src sources for tile URL templates (`{s}` as the first label becomes `*.`)."""
    sources = []
    for url in urls:
        parts = urlsplit(url)
        if not parts.netloc:
            continue  # a path on this site: 'self' covers it
        host = re.sub(r"^\{[a-z]\}\.", "*.", parts.netloc.lower())
        if parts.scheme not in ("http", "https") or not _CSP_HOST.fullmatch(host):
            # Leaflet fills only {s} into a host; anything else cannot be named in a policy.
            log.warning("basemap tile host %r cannot be allowed by the page policy", parts.netloc)
            continue
        sources.append(f"{parts.scheme}://{host}")
    return sorted(set(sources))


def content_security_policy(nonce: str, image_sources: list[str]) -> str:
    img_src = " ".join(["'self'", "data:", *image_sources])
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src 'self' 'nonce-{nonce}'",
            # folium and Leaflet position everything with inline styles.
            "style-src 'self' 'unsafe-inline'",
            f"img-src {img_src}",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
            "form-action 'self'",
        ]
    )


def local_target(target: str | None) -> str:
    """`target` if it is a path on this site, else the street page (no open redirect).

    Browsers read `/\\host` like `//host` and drop tabs and newlines from URLs, so a path must
    start with one `/` and a character that is neither slash, hold no backslash and no control
    character, and parse to no scheme or host.
    """
    if (
        not target
        or len(target) < 2
        or target[0] != "/"
        or target[1] in "/\\"
        or "\\" in target
        or _CONTROL.search(target)
    ):
        return DEFAULT_NEXT
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return DEFAULT_NEXT
    return target


class PageSecurityHeaders:
    """CSP with a per-response nonce, nosniff, same-origin referrers and no framing on pages.

    Pages are everything outside /api/; the policy goes on HTML responses (a 304 carries none:
    its cached body keeps the policy, and the nonce, it came with).
    """

    def __init__(self, app: ASGIApp, tile_urls: list[str]) -> None:
        self.app = app
        self.image_sources = tile_sources(tile_urls)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "").startswith(API_PREFIX):
            await self.app(scope, receive, send)
            return
        nonce = new_nonce()
        scope.setdefault("state", {})["csp_nonce"] = nonce

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "same-origin")
                headers.setdefault("X-Frame-Options", "DENY")
                html = headers.get("content-type", "").startswith("text/html")
                if html and message["status"] != 304:
                    headers["Content-Security-Policy"] = content_security_policy(
                        nonce, self.image_sources
                    )
            await send(message)

        await self.app(scope, receive, with_headers)
