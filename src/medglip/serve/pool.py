"""A bounded pool of daemon threads for the blocking work of requests (unpacking, parsing, decoding).

``await pool.run(fn, *args)`` runs ``fn`` on one of ``workers`` threads with a copy of the caller's
context (so the request's :class:`~.budget.RequestScope` and read policy follow it) and keeps the
event loop free. If the awaiting request is cancelled (deadline, client gone) a job that has not
started is dropped, and one that has started is abandoned: the await returns at once, the thread
finishes (the readers stop at their next deadline check) and only then counts as free again, so
the number of threads never exceeds ``workers``. The threads are daemons: a stuck one never keeps the
process from exiting.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from .budget import current_scope

log = logging.getLogger(__name__)

_STOP = object()


class WorkPool:
    """``workers`` daemon threads consuming a queue of jobs (see the module docstring)."""

    def __init__(self, workers: int, name: str = "medglip-io") -> None:
        self.workers = max(1, int(workers))
        self.name = name
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.busy = 0
        self.abandoned = 0

    def _start(self) -> None:
        with self._lock:
            while len(self._threads) < self.workers:
                t = threading.Thread(target=self._loop, name=f"{self.name}-{len(self._threads)}", daemon=True)
                t.start()
                self._threads.append(t)

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            future, ctx, fn, args = item
            if not future.set_running_or_notify_cancel():
                continue
            with self._lock:
                self.busy += 1
            try:
                result = ctx.run(fn, *args)
            except BaseException as exc:  # delivered to the awaiting request
                future.set_exception(exc)
            else:
                future.set_result(result)
            finally:
                with self._lock:
                    self.busy -= 1

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on a pool thread; see the module docstring for cancellation."""
        self._start()
        scope = current_scope()
        ctx = contextvars.copy_context()

        def call(*a: Any) -> Any:
            try:
                return fn(*a)
            finally:
                if scope is not None:
                    scope.release()

        future: Future = Future()
        if scope is not None:
            scope.hold()
        self._queue.put((future, ctx, call, args))
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            if future.cancel():  # never started: its hold is ours to release
                if scope is not None:
                    scope.release()
            else:
                self.abandoned += 1
            raise

    def stats(self) -> dict[str, int]:
        return {"io_workers": self.workers, "io_busy": self.busy, "io_abandoned": self.abandoned}

    def close(self) -> None:
        """Stop the threads once they are idle (running jobs are not waited for)."""
        with self._lock:
            for _ in self._threads:
                self._queue.put(_STOP)
            self._threads = []
