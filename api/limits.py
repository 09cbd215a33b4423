"""Request limits: body size, trusted Host headers, and a bound on concurrent heavy work."""

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
        await _send_json(
            send,
            413,
            {
                "error": {
                    "code": "payload_too_large",
                    "message": f"请求体超过上限 {limit} 字节",
                    "where": "body",
                }
            },
        )


class TrustedHosts:
    """Answer only requests whose Host header names this service (DNS-rebinding defence).

    A page on evil.example that rebinds its name to 127.0.0.1 reaches a local wangge with
    `Host: evil.example`, and gets 400 `invalid_host` instead of the API.
    """

    def __init__(self, app: ASGIApp, allowed_hosts: list[str]) -> None:
        self.app = app
        self.allowed = {host.lower().strip("[]") for host in allowed_hosts}
        self.any = "*" in self.allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self.any:
            await self.app(scope, receive, send)
            return
        header = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1").lower()
        host = header.rsplit(":", 1)[0] if not header.endswith("]") else header
        if host.strip("[]") in self.allowed:
            await self.app(scope, receive, send)
            return
        await _send_json(
            send,
            400,
            {
                "error": {
                    "code": "invalid_host",
                    "message": "请求的主机名不在本服务的允许列表中（WANGGE_ALLOWED_HOSTS）",
                    "where": "header.Host",
                }
            },
        )


async def _send_json(send: Send, status: int, content: dict) -> None:
    body = json.dumps(content, ensure_ascii=False).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
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
