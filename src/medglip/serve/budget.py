"""Per-request deadlines, cancellation and memory: :class:`RequestScope` and :class:`MemoryBudget`.

Every ``/v1`` request gets a :class:`RequestScope` (made by :class:`~.middleware.DeadlineMiddleware`
and put in the :data:`CURRENT` context variable, so it follows the request into its threads and
worker jobs):

- ``deadline``: a ``time.monotonic()`` value; work checks :attr:`RequestScope.stopped`;
- ``cancel()``: the client went away or the deadline passed; queued worker jobs are dropped and the
  running one stops at its next check;
- ``charge(nbytes)``: the readers call it (through :class:`medglip.io.policy.ReadPolicy`) with an
  image's decoded size before allocating; the scope reserves the largest such size of the request
  in the shared :class:`MemoryBudget` and raises :class:`MemoryBusy` (503) when there is no room.
  The reservation is returned when the request has ended AND the last thread or job working for it
  has finished (:meth:`RequestScope.hold` / :meth:`RequestScope.release`), so memory still in use by
  abandoned work stays counted;
- ``client``: who sent it (``key:<API key name>``, else ``ip:<address>``): the model worker shares its
  time between clients by it (:mod:`.batcher`);
- ``charge_slices(n)``: the model worker counts the volume slices it grounds for the request and stops
  it past ``max_slices`` (:class:`WorkLimit`, 413): the slices a request may cost are bounded however
  small its file (the routes refuse a volume declaring more before any work, :mod:`.work`).
"""

from __future__ import annotations

import threading
import time
from contextvars import ContextVar
from dataclasses import dataclass, field

from ..errors import MedglipError

MiB = 2**20
#: seconds after a request's deadline at which its work stops by itself (it is cancelled at the deadline)
GRACE_S = 0.25


class MemoryBusy(MedglipError):
    """The decoded images of the requests in flight already fill the memory budget (answer: 503)."""


class Cancelled(MedglipError):
    """The work of a request was stopped: its client went away or its deadline passed (answer: 504)."""


class WorkLimit(MedglipError):
    """A request asks the model for more work than one request may cost (slices, model passes; answer: 413)."""


class MemoryBudget:
    """Bytes of decoded images all requests in flight may hold together (thread-safe)."""

    def __init__(self, total: int) -> None:
        self.total = int(total)
        self.used = 0
        self.peak = 0
        self.refused = 0
        self._lock = threading.Lock()

    def try_reserve(self, nbytes: int) -> bool:
        with self._lock:
            if self.used + nbytes > self.total:
                self.refused += 1
                return False
            self.used += nbytes
            self.peak = max(self.peak, self.used)
            return True

    def release(self, nbytes: int) -> None:
        with self._lock:
            self.used = max(0, self.used - nbytes)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "inflight_bytes": self.used,
                "inflight_bytes_peak": self.peak,
                "max_inflight_bytes": self.total,
                "rejected_memory": self.refused,
            }


@dataclass
class RequestScope:
    """One request's deadline, cancellation flag and memory reservation (see the module docstring)."""

    budget: MemoryBudget | None = None
    deadline: float | None = None
    what: str = "request"
    cancelled: threading.Event = field(default_factory=threading.Event)
    reason: str = ""
    reserved: int = 0
    client: str = ""
    max_slices: int | None = None
    slices: int = 0
    _holds: int = 0
    _closed: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def expired(self) -> bool:
        """Past the deadline by more than :data:`GRACE_S` (the middleware answers 504 at the deadline
        itself; the grace keeps the work from answering the same deadline a moment earlier)."""
        return self.deadline is not None and time.monotonic() > self.deadline + GRACE_S

    @property
    def stopped(self) -> bool:
        """Cancelled, or past the deadline: work for this request should stop."""
        return self.cancelled.is_set() or self.expired

    def remaining(self) -> float | None:
        """Seconds to the deadline (None: none)."""
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    def cancel(self, reason: str) -> None:
        if not self.cancelled.is_set():
            self.reason = reason
            self.cancelled.set()

    def check(self) -> None:
        """Raise :class:`Cancelled` when the request's work should stop."""
        if self.stopped:
            raise Cancelled(f"{self.what}: {self.reason or 'deadline passed'}; its work was stopped")

    def charge(self, nbytes: int, path: str = "") -> None:
        """Reserve ``nbytes`` (the largest decoded image of this request so far) in the shared budget."""
        self.check()
        if self.budget is None:
            return
        with self._lock:
            extra = int(nbytes) - self.reserved
            if extra <= 0:
                return
            if not self.budget.try_reserve(extra):
                raise MemoryBusy(
                    f"server busy: decoding this image needs {nbytes / MiB:,.0f} MiB and the images of "
                    f"the requests in flight already use {self.budget.used / MiB:,.0f} of the "
                    f"{self.budget.total / MiB:,.0f} MiB this server allows (max_inflight_bytes); "
                    "retry shortly"
                )
            self.reserved += extra

    def charge_slices(self, n: int) -> None:
        """Count ``n`` more grounded slices; :class:`WorkLimit` past ``max_slices`` (called by the model worker)."""
        with self._lock:
            self.slices += int(n)
            over = self.max_slices is not None and self.slices > self.max_slices
        if over:
            raise WorkLimit(
                f"{self.what}: its grounding reached {self.slices:,} slices, above this server's limit of "
                f"{self.max_slices:,} slices per request (max_slices); its work was stopped"
            )

    def hold(self) -> None:
        """A thread or worker job starts working for this request."""
        with self._lock:
            self._holds += 1

    def release(self) -> None:
        """The work started by :meth:`hold` has finished."""
        with self._lock:
            self._holds -= 1
            done = self._closed and self._holds <= 0
        if done:
            self._free()

    def close(self) -> None:
        """The request has been answered (or abandoned); frees its memory once no work holds it."""
        with self._lock:
            self._closed = True
            done = self._holds <= 0
        if done:
            self._free()

    def _free(self) -> None:
        with self._lock:
            n, self.reserved = self.reserved, 0
        if n and self.budget is not None:
            self.budget.release(n)


#: The scope of the request the current code works for (None outside requests).
CURRENT: ContextVar[RequestScope | None] = ContextVar("medglip_request_scope", default=None)


def current_scope() -> RequestScope | None:
    return CURRENT.get()
