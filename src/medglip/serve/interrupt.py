"""Interrupt a Python thread from another one: CPython's ``PyThreadState_SetAsyncExc``.

The exception is raised in the target thread at its next Python bytecode (a running C call, such as
one numpy operation, finishes first). The batcher uses it as a last resort, for a job that keeps the
model worker busy past its request's deadline outside the model's forward passes (reading a volume,
slicing it, post-processing), where its forward pre-hooks cannot stop it. The caller must make sure
the thread is still running the job it means to stop (the batcher decides and raises under the lock
the worker uses to leave a job, and the worker clears a pending interrupt there).
"""

from __future__ import annotations

import ctypes
import threading

from .budget import Cancelled


class WorkerStopped(Cancelled):
    """Raised in the worker thread by the batcher's watchdog: the running job's request has stopped."""

    def __init__(
        self, message: str = "stopped by the watchdog: the request's deadline passed or its client left"
    ) -> None:
        super().__init__(message)


def raise_in_thread(thread: threading.Thread, exc_type: type[BaseException]) -> bool:
    """Schedule ``exc_type`` (a class) in ``thread``; False when the thread is gone."""
    if thread.ident is None or not thread.is_alive():
        return False
    n = ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(exc_type))
    if n > 1:  # never expected: undo rather than hit several threads
        clear_in_thread(thread)
        return False
    return n == 1


def clear_in_thread(thread: threading.Thread) -> None:
    """Withdraw an exception scheduled by :func:`raise_in_thread` that has not been raised yet."""
    if thread.ident is not None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), None)
