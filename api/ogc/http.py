"""HTTP details GIS clients rely on under /ogc and /tiles: HEAD answered like GET (headers
only), and `Vary: Accept` where one URL serves GeoJSON or HTML by the Accept header."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

PREFIXES = ("/ogc", "/tiles/")


class HeadAndVary:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(PREFIXES):
            await self.app(scope, receive, send)
            return
        head = scope["method"] == "HEAD"
        if head:
            scope = {**scope, "method": "GET"}

        async def respond(message: Message) -> None:
            if message["type"] == "http.response.start" and path.startswith("/ogc"):
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"vary"]
                varies = [v for k, v in message.get("headers", []) if k.lower() == b"vary"]
                vary = b", ".join([*varies, b"Accept, Authorization"])
                message = {**message, "headers": [*headers, (b"vary", vary)]}
            elif message["type"] == "http.response.body" and head:
                message = {**message, "body": b"", "more_body": message.get("more_body", False)}
            await send(message)

        await self.app(scope, receive, respond)
