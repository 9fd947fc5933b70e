"""ASGI middleware: refuse over-large request bodies early (413) and count responses by status class."""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: room for the form fields and multipart framing on top of the file's own bytes
FORM_OVERHEAD = 1 << 20


class _BodyTooLarge(Exception):
    pass


class LimitBodyMiddleware:
    """413 for ``POST`` bodies above ``max_body`` bytes: from ``Content-Length`` before reading
    anything, or while streaming when the client sends no length (chunked); counts the responses
    in ``counters`` (``requests``, ``2xx``, ``4xx``, ``5xx``)."""

    def __init__(self, app: Any, *, max_body: int, counters: dict[str, int]) -> None:
        self.app = app
        self.max_body = int(max_body)
        self.counters = counters

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.counters["requests"] += 1
        started = False
        too_large = False

        async def counting_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                if too_large:
                    return  # the app's reaction to the aborted body is replaced by our 413
                started = True
                key = f"{message['status'] // 100}xx"
                self.counters[key] = self.counters.get(key, 0) + 1
            elif too_large and not started:
                return
            await send(message)

        length = _content_length(scope)
        if length is not None and length > self.max_body:
            await self._send_413(counting_send, length)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen, too_large
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    too_large = True
                    raise _BodyTooLarge()
            return message

        try:
            await self.app(scope, limited_receive, counting_send)
        except _BodyTooLarge:
            pass
        if too_large and not started:
            too_large = False
            await self._send_413(counting_send, None)

    async def _send_413(self, send: Send, length: int | None) -> None:
        size = f"of {length:,} bytes " if length is not None else ""
        body = json.dumps({"detail": f"file: request body {size}is above this server's upload limit of "
                                     f"{self.max_body - FORM_OVERHEAD:,} bytes (max_upload_bytes)"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
