"""uvicorn settings for the real world: keep-alive, a header timeout, a concurrency limit, header size.

uvicorn closes idle keep-alive connections (``timeout_keep_alive``) and answers 503 above
``limit_concurrency``, but it has no timeout for a request's HEADERS: a client that connects and
sends half a request line, or one byte of the next request on a kept-alive connection, holds the
connection forever (200 such connections were never closed). :func:`header_timeout_protocol` makes
a subclass of uvicorn's own h11 protocol that closes a connection when a request's headers are not
complete ``header_timeout`` seconds after the connection opened or the previous response ended.
Slow BODIES are the app's business (:class:`~.middleware.LimitBodyMiddleware`: 408 after
``body_timeout_s`` without data), and every request has a deadline (:class:`~.middleware.DeadlineMiddleware`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from . import redact
from .config import ServerSettings


def header_timeout_protocol(header_timeout: float) -> type[H11Protocol]:
    """An ``H11Protocol`` subclass that closes connections whose request headers take too long."""

    class HeaderTimeoutProtocol(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None

        def _arm(self) -> None:
            self._disarm()
            self._header_timer = self.loop.call_later(header_timeout, self._header_timeout)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _waiting_for_headers(self) -> bool:
            return self.cycle is None or self.cycle.response_complete

        def _header_timeout(self) -> None:
            self._header_timer = None
            if self._waiting_for_headers() and not self.transport.is_closing():
                self.logger.debug("closing a connection whose request headers took more than %g s", header_timeout)
                self.transport.close()

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            if self._header_timer is None and self._waiting_for_headers():
                self._arm()  # the first bytes of the next request on a kept-alive connection
            cycle = self.cycle
            super().data_received(data)
            if self.cycle is not cycle and not self._waiting_for_headers():
                self._disarm()  # a complete request head arrived

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._disarm()  # the keep-alive timer of uvicorn runs until the next request's first byte

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return HeaderTimeoutProtocol


def uvicorn_config(app: Any, host: str, port: int, settings: ServerSettings, *, log_level: str = "info") -> Any:
    """The ``uvicorn.Config`` of :func:`medglip.serve.serve` (h11 with the header timeout)."""
    import uvicorn

    proxied = settings.forwarded_allow_ips is not None
    redact.install()  # uvicorn's access log writes each request line, query string included
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        http=header_timeout_protocol(settings.header_timeout_s),
        timeout_keep_alive=settings.timeout_keep_alive,
        limit_concurrency=settings.limit_concurrency,
        h11_max_incomplete_event_size=settings.max_header_bytes,
        proxy_headers=proxied,
        forwarded_allow_ips=settings.forwarded_allow_ips if proxied else None,
        server_header=False,
    )
