"""ASGI middleware of the service.

- :class:`LimitBodyMiddleware`: 413 for over-large request bodies (from ``Content-Length`` before
  reading anything, or while streaming), 408 when a body stalls for ``body_timeout`` seconds, and the
  response counters (``requests``, ``2xx``, ``4xx``, ``5xx``).
- :class:`DeadlineMiddleware`: every ``/v1`` request gets a :class:`~.budget.RequestScope` (its client,
  for the worker's fair shares; its slice limit) and a :class:`~medglip.io.policy.ReadPolicy`
  (decoded-byte limit and memory charge, float32, deadline, no separate data files) in its context; past
  the deadline the request is cancelled and answers 504; when the client disconnects the request is
  cancelled (no answer). Cancelling marks the scope, so queued worker jobs are dropped and running ones
  stop at their next check.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio

from ..io.policy import ReadPolicy, read_policy
from .budget import CURRENT, GRACE_S, MemoryBudget, RequestScope

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: room for the form fields and multipart framing on top of the file's own bytes
FORM_OVERHEAD = 1 << 20


class _BodyTooLarge(Exception):
    pass


class _BodyStalled(Exception):
    pass


async def send_json(
    send: Send, status: int, detail: str, headers: Sequence[tuple[bytes, bytes]] = (), *, close: bool = True
) -> None:
    """Answer ``{"detail": detail}`` with ``status`` (and ``Connection: close`` unless told otherwise)."""
    body = json.dumps({"detail": detail}).encode()
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers]
    if close:
        head.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


class LimitBodyMiddleware:
    """413 for ``POST`` bodies above ``max_body`` bytes: from ``Content-Length`` before reading
    anything, or while streaming when the client sends no length (chunked); 408 when the next piece
    of a body takes more than ``body_timeout`` seconds; counts the responses in ``counters``
    (``requests``, ``2xx``, ``4xx``, ``5xx``)."""

    def __init__(self, app: Any, *, max_body: int, counters: dict[str, int], body_timeout: float = 15.0) -> None:
        self.app = app
        self.max_body = int(max_body)
        self.counters = counters
        self.body_timeout = float(body_timeout)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.counters["requests"] += 1
        started = False
        failed: str | None = None  # "large" / "stalled": our answer replaces the app's

        async def counting_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                if failed:
                    return  # the app's reaction to the aborted body is replaced by our 413 / 408
                started = True
                key = f"{message['status'] // 100}xx"
                self.counters[key] = self.counters.get(key, 0) + 1
            elif failed and not started:
                return
            await send(message)

        length = _content_length(scope)
        if length is not None and length > self.max_body:
            await self._send_413(counting_send, length)
            return
        seen = 0
        more = True

        async def limited_receive() -> Message:
            nonlocal seen, failed, more
            if not more:  # the body is complete: this waits for the disconnect, however long
                return await receive()
            try:
                with anyio.fail_after(self.body_timeout):
                    message = await receive()
            except TimeoutError:
                failed = "stalled"
                raise _BodyStalled() from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                more = bool(message.get("more_body", False))
                if seen > self.max_body:
                    failed = "large"
                    raise _BodyTooLarge()
            return message

        try:
            await self.app(scope, limited_receive, counting_send)
        except (_BodyTooLarge, _BodyStalled):
            pass
        if failed and not started:
            what, failed = failed, None
            if what == "large":
                await self._send_413(counting_send, None)
            else:
                await send_json(
                    counting_send,
                    408,
                    f"request body stalled: no data for {self.body_timeout:g} s "
                    "(body_timeout_s); send the whole request without pausing",
                )

    async def _send_413(self, send: Send, length: int | None) -> None:
        size = f"of {length:,} bytes " if length is not None else ""
        await send_json(
            send,
            413,
            f"file: request body {size}is above this server's upload limit of "
            f"{self.max_body - FORM_OVERHEAD:,} bytes (max_upload_bytes)",
        )


def client_of(scope: Scope) -> str:
    """Who sent a request, for the worker's fair shares: ``key:<name>`` of its API key (set by the access
    layer), else ``ip:<address>`` (behind a proxy, the forwarded address when ``forwarded_allow_ips`` is set)."""
    caller = scope.get("state", {}).get("caller")
    if caller and caller != "anonymous":
        return f"key:{caller}"
    client = scope.get("client")
    return f"ip:{client[0]}" if client else "ip:-"


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class DeadlineMiddleware:
    """Deadline, disconnect cancellation and read policy of every ``/v1`` request (module docstring).

    Args:
        timeout: seconds from the request's arrival to its answer.
        budget: the shared :class:`~.budget.MemoryBudget` of decoded bytes.
        max_request_bytes: the read policy's ``max_bytes`` (largest decoded image of one request).
        counters: gets ``deadline_exceeded`` and ``client_gone``.
        max_slices: the scope's ``max_slices`` (volume slices the worker grounds for one request).
    """

    def __init__(
        self,
        app: Any,
        *,
        timeout: float,
        budget: MemoryBudget,
        max_request_bytes: int,
        counters: dict[str, int],
        max_slices: int | None = None,
    ) -> None:
        self.app = app
        self.timeout = float(timeout)
        self.budget = budget
        self.max_request_bytes = int(max_request_bytes)
        self.counters = counters
        self.max_slices = max_slices

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        ends = time.monotonic() + self.timeout
        req = RequestScope(
            self.budget, ends, f"{scope['method']} {scope['path']}", client=client_of(scope), max_slices=self.max_slices
        )
        # an upload is read as itself: no header may make a reader open another file of the server
        policy = ReadPolicy(
            max_bytes=self.max_request_bytes,
            float32=True,
            deadline=ends + GRACE_S,
            charge=req.charge,
            cancelled=req.cancelled.is_set,
            data_files="refuse",
        )
        body_done, disconnected = anyio.Event(), anyio.Event()
        started = False

        async def guarded_receive() -> Message:
            if body_done.is_set():  # the watcher below owns `receive` now
                await disconnected.wait()
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request" and not message.get("more_body", False):
                body_done.set()
            elif message["type"] == "http.disconnect":
                disconnected.set()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                deadline.deadline = math.inf  # an answer on its way is finished, not cut off
            await send(message)

        deadline = anyio.CancelScope(deadline=anyio.current_time() + self.timeout)
        token = CURRENT.set(req)
        try:
            with read_policy(policy):
                async with anyio.create_task_group() as tg:

                    async def watch_disconnect() -> None:
                        await body_done.wait()
                        message = await receive()
                        if message["type"] == "http.disconnect" and not started:
                            disconnected.set()
                            req.cancel("the client disconnected")
                            self.counters["client_gone"] = self.counters.get("client_gone", 0) + 1
                            tg.cancel_scope.cancel()

                    tg.start_soon(watch_disconnect)
                    with deadline:
                        await self.app(scope, guarded_receive, tracking_send)
                    tg.cancel_scope.cancel()
            if deadline.cancelled_caught:
                req.cancel(f"deadline of {self.timeout:g} s passed")
                self.counters["deadline_exceeded"] = self.counters.get("deadline_exceeded", 0) + 1
                if not started:
                    await send_json(
                        send,
                        504,
                        f"deadline: the request took longer than this server's limit of "
                        f"{self.timeout:g} s (request_timeout_s); its work was stopped",
                    )
        finally:
            CURRENT.reset(token)
            req.close()
