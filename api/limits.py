"""Request size limits, enforced before a handler reads the body (chunked uploads included)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import Busy


class BodyTooLarge(Exception):
    pass


class BodySizeLimit:
    """Reject bodies over `default_bytes` (or `upload_bytes` under upload paths) with 413."""

    def __init__(
        self, app: ASGIApp, default_bytes: int, upload_bytes: int, upload_prefixes: tuple[str, ...]
    ) -> None:
        self.app = app
        self.default_bytes = default_bytes
        self.upload_bytes = upload_bytes
        self.upload_prefixes = upload_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        limit = self.upload_bytes if path.startswith(self.upload_prefixes) else self.default_bytes
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._reject(send, limit)
            return
        received = 0
        exceeded = False
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            # A framework may turn the receive error into its own 400; answer 413 instead.
            nonlocal response_started
            if exceeded:
                if message["type"] == "http.response.start" and not response_started:
                    response_started = True
                    await self._reject(send, limit)
                return
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not response_started:
                await self._reject(send, limit)

    @staticmethod
    async def _reject(send: Send, limit: int) -> None:
        body = json.dumps(
            {
                "error": {
                    "code": "payload_too_large",
                    "message": f"请求体超过上限 {limit} 字节",
                    "where": "body",
                }
            },
            ensure_ascii=False,
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class HeavyWork:
    """A bound on concurrent expensive requests (exports, file lookups, historical indexes).

    Anonymous reads may be heavy; without a bound, a handful of them in a loop would occupy
    every worker thread and the database. A request that cannot start within `wait_seconds`
    gets 503 `busy` with Retry-After instead of queueing without end.
    """

    def __init__(self, slots: int, wait_seconds: float = 10.0) -> None:
        self._slots = threading.BoundedSemaphore(slots)
        self._wait_seconds = wait_seconds

    @contextmanager
    def slot(self) -> Iterator[None]:
        if not self._slots.acquire(timeout=self._wait_seconds):
            raise Busy(
                "服务繁忙：同时进行的大查询（导出、文件查询、历史版本）已达上限，请稍后重试",
                code="busy",
            )
        try:
            yield
        finally:
            self._slots.release()
