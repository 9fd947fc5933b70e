"""One worker thread owns the Grounder; requests reach it through a bounded queue.

The :class:`~medglip.infer.Grounder` is not thread-safe, so every model call of the service runs on
the single worker thread of a :class:`Batcher`:

- :meth:`Batcher.submit_ground` queues one 2D image with its prompt. The worker takes the first
  waiting job, then waits up to ``batch_wait_ms`` for more jobs with the SAME batching key
  ``(phrases, modality, masks, score_threshold, top_k)`` and grounds them all in ONE call
  ``grounder.ground([img1, img2, ...], phrases, ...)`` (at most ``max_batch`` images). Jobs with
  another key that arrive meanwhile keep their order and run next. The wait is skipped when the
  queue is empty and no request is on its way (:meth:`Batcher.announce` / :meth:`Batcher.withdraw`
  bracket the reading of an upload), so a lone client pays no batching delay.
- :meth:`Batcher.submit_call` queues any other work (a volume, a whole VQA / report step): a
  function of the grounder, run alone.

Each job has a :class:`concurrent.futures.Future`; asyncio handlers await it with
:func:`asyncio.wrap_future` (delivery through ``loop.call_soon_threadsafe``), plain threads call
``.result()``. An exception fails only its own job: when a batch fails, its images are retried one
by one so that only the bad one gets the error. A full queue raises :class:`ServerBusy`.

Deadlines and cancellation: a job remembers the :class:`~.budget.RequestScope` of the request that
submitted it (and runs in a copy of that request's context). A job whose request has been cancelled
or is past its deadline is dropped before it runs (:class:`~.budget.Cancelled`), and a running one
is stopped at the next forward pass of the model: :meth:`Batcher.install_stop_hooks` registers a
``torch.nn.Module`` forward pre-hook on the model and its direct children that raises
:class:`~.budget.Cancelled` on the worker thread once every job of the running batch has stopped.
Work outside the forward passes (reading and slicing a volume, post-processing) is stopped by a
watchdog thread: ``watchdog_s`` seconds after the running jobs stopped it interrupts the worker
(:mod:`.interrupt`). ``stats()`` reports ``cancelled``, ``interrupted``, ``longest_job_s`` and ``busy_s``.
"""

from __future__ import annotations

import contextvars
import logging
import queue
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable

from ..io.policy import ReadTimeout
from .budget import Cancelled, current_scope
from .interrupt import WorkerStopped, clear_in_thread, raise_in_thread

#: what stops a job of a request whose deadline passed or whose client left
STOPPED = (Cancelled, ReadTimeout)

log = logging.getLogger(__name__)


class ServerBusy(Exception):
    """The request queue is full (the service answers 503 with ``Retry-After``)."""


@dataclass
class _Job:
    """One unit of work: a 2D image to ground (``key`` set) or a function of the grounder."""

    future: Future
    key: tuple[Hashable, ...] | None = None
    image: Any = None
    fn: Callable[[Any], Any] | None = None
    queued_at: float = field(default_factory=time.monotonic)
    scope: Any = None  # the submitting request's RequestScope (None outside requests)
    context: contextvars.Context = field(default_factory=contextvars.copy_context)

    @property
    def stopped(self) -> bool:
        return self.scope is not None and self.scope.stopped


_STOP = object()


class Batcher:
    """The worker thread and its queue (see the module docstring).

    Args:
        grounder: the object all jobs run against (its ``ground`` is called with lists of images).
        max_batch: most images per batched ``ground`` call.
        batch_wait_ms: how long to wait for same-key jobs after the first one of a batch.
        max_queue: most jobs waiting; :meth:`submit_ground` / :meth:`submit_call` raise
            :class:`ServerBusy` beyond it.
    """

    def __init__(self, grounder: Any, *, max_batch: int = 8, batch_wait_ms: float = 10.0, max_queue: int = 256,
                 watchdog_s: float = 0.5) -> None:
        self.grounder = grounder
        self.max_batch = max(1, int(max_batch))
        self.batch_wait = max(0.0, float(batch_wait_ms)) / 1000.0
        self.max_queue = max(1, int(max_queue))
        self._queue: queue.Queue = queue.Queue(maxsize=self.max_queue)
        self._pending: deque[_Job] = deque()  # taken off the queue while batching, other key
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._incoming = 0  # requests announced (being read / decoded) but not queued yet
        self._running: list[_Job] = []  # the jobs the worker is running now
        self._stopped_since: float | None = None  # when the watchdog first saw them all stopped
        self.watchdog_s = float(watchdog_s)
        self._hooks: list[Any] = []
        self.counters: dict[str, float] = {"jobs": 0, "done": 0, "failed": 0, "rejected_busy": 0, "batches": 0,
                                           "batched_images": 0, "largest_batch": 0, "calls": 0, "cancelled": 0,
                                           "interrupted": 0, "longest_job_s": 0.0, "busy_s": 0.0}

    # ------------------------------------------------------------------------------ submit
    def submit_ground(self, image: Any, phrases: tuple[str, ...], *, modality: str | None = None,
                      masks: bool | str = False, score_threshold: float | None = None, top_k: int | None = None) -> Future:
        """Queue one image; the future's result is its :class:`~medglip.infer.GroundingResult`."""
        key = (tuple(phrases), modality, masks if isinstance(masks, str) else bool(masks), score_threshold, top_k)
        return self._put(_Job(Future(), key=key, image=image))

    def submit_call(self, fn: Callable[[Any], Any]) -> Future:
        """Queue ``fn(grounder)`` to run alone on the worker; the future holds its return value."""
        return self._put(_Job(Future(), fn=fn))

    def _put(self, job: _Job) -> Future:
        if self._stopped:
            raise ServerBusy("the service is shutting down")
        job.scope = current_scope()
        self._ensure_started()
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            with self._lock:
                self.counters["rejected_busy"] += 1
            raise ServerBusy(f"server busy: {self.max_queue} requests are already waiting") from None
        with self._lock:
            self.counters["jobs"] += 1
        return job.future

    def announce(self) -> None:
        """A 2D request is on its way (its upload is being read): worth waiting for it to batch."""
        with self._lock:
            self._incoming += 1

    def withdraw(self) -> None:
        """The announced request was queued or gave up."""
        with self._lock:
            self._incoming = max(0, self._incoming - 1)

    # ------------------------------------------------------------------------------ state
    @property
    def queue_depth(self) -> int:
        """Jobs waiting (not yet taken into a batch)."""
        return self._queue.qsize() + len(self._pending)

    def stats(self) -> dict[str, float]:
        """A copy of the counters plus the current queue depth."""
        with self._lock:
            out = dict(self.counters)
        out["longest_job_s"] = round(out["longest_job_s"], 3)
        out["busy_s"] = round(out["busy_s"], 3)
        out["queue_depth"] = self.queue_depth
        out["max_queue"] = self.max_queue
        return out

    def _ensure_started(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="medglip-grounder", daemon=True)
                self._thread.start()
                threading.Thread(target=self._watchdog, args=(self._thread,), name="medglip-watchdog",
                                 daemon=True).start()

    def _watchdog(self, worker: threading.Thread) -> None:
        """Interrupt the worker ``watchdog_s`` after every running job has stopped (module docstring)."""
        period = min(0.1, max(0.01, self.watchdog_s / 5))
        while worker.is_alive():
            time.sleep(period)
            with self._lock:  # the worker leaves a job under this lock: no interrupt can hit the next one
                jobs = self._running
                if not jobs or not (self._stopped or all(j.stopped for j in jobs)):
                    self._stopped_since = None
                    continue
                now = time.monotonic()
                if self._stopped_since is None:
                    self._stopped_since = now
                elif now - self._stopped_since >= self.watchdog_s and raise_in_thread(worker, WorkerStopped):
                    self.counters["interrupted"] += 1
                    self._stopped_since = now + 3600  # once per job; it is leaving

    def install_stop_hooks(self, model: Any) -> int:
        """Let the worker stop a running job whose request was cancelled or passed its deadline: a forward
        pre-hook on ``model`` (a ``torch.nn.Module``) and on each of its direct children raises
        :class:`~.budget.Cancelled` on this batcher's worker thread once every running job has stopped.
        Returns the number of hooks (0 when ``model`` is no module)."""
        if not hasattr(model, "register_forward_pre_hook"):
            return 0

        def hook(module: Any, args: Any) -> None:
            if threading.current_thread() is self._thread:
                self._check_running()

        for m in [model, *getattr(model, "children", lambda: [])()]:
            self._hooks.append(m.register_forward_pre_hook(hook))
        return len(self._hooks)

    def _check_running(self) -> None:
        jobs = self._running
        if jobs and (self._stopped or all(j.stopped for j in jobs)):
            reasons = {j.scope.reason or "deadline passed" for j in jobs}
            raise Cancelled(f"stopped on the model worker: {', '.join(sorted(reasons))}")

    def close(self, timeout: float | None = 5.0) -> None:
        """Stop the worker: the running job is stopped (watchdog), queued ones fail, later submissions
        raise :class:`ServerBusy`."""
        self._stopped = True
        for h in self._hooks:
            h.remove()
        self._hooks = []
        thread = self._thread
        if thread is not None and thread.is_alive():
            self._queue.put(_STOP)
            thread.join(timeout)

    # ------------------------------------------------------------------------------ worker
    def _next(self, timeout: float | None) -> Any:
        """The next job: an earlier set-aside one first, else from the queue (None on timeout)."""
        if self._pending:
            return self._pending.popleft()
        try:
            return self._queue.get(timeout=timeout) if timeout is None or timeout > 0 else self._queue.get_nowait()
        except queue.Empty:
            return None

    def _run(self) -> None:
        while True:
            try:
                job = self._next(None)
                if job is _STOP:
                    self._fail_pending()
                    return
                if not job.future.set_running_or_notify_cancel():
                    continue  # the client went away while the job waited
                if self._drop_if_stopped(job):
                    continue
                if job.key is None:
                    self._timed([job], self._run_call, job)
                else:
                    batch = [j for j in self._collect(job) if not self._drop_if_stopped(j)]
                    if batch:
                        self._timed(batch, self._run_batch, batch)
            except WorkerStopped:  # the watchdog's interrupt landed while a job was being left
                self._leave_job()

    def _drop_if_stopped(self, job: _Job) -> bool:
        """Fail a job whose request was cancelled or is past its deadline (or the service is closing)
        without running it."""
        if not (job.stopped or self._stopped):
            return False
        with self._lock:
            self.counters["cancelled"] += 1
        why = "the service is shutting down" if self._stopped else (job.scope.reason or "deadline passed")
        job.future.set_exception(Cancelled(f"dropped before running: {why}"))
        return True

    def _timed(self, jobs: list[_Job], fn: Callable[..., None], arg: Any) -> None:
        """Run ``fn(arg)`` with ``jobs`` marked as running (for the stop hooks and the watchdog) and time it."""
        with self._lock:
            self._running = jobs
        t0 = time.monotonic()
        try:
            jobs[0].context.run(fn, arg)
        finally:
            self._leave_job()
            dt = time.monotonic() - t0
            with self._lock:
                self.counters["busy_s"] += dt
                self.counters["longest_job_s"] = max(self.counters["longest_job_s"], dt)

    def _leave_job(self) -> None:
        """The worker is done with its jobs: unresolved ones fail, a pending interrupt is withdrawn."""
        with self._lock:
            jobs, self._running = self._running, []
            if self._thread is not None:
                clear_in_thread(self._thread)
        for job in jobs:
            if not job.future.done():
                self._finish(job, error=WorkerStopped())

    def _collect(self, first: _Job) -> list[_Job]:
        """``first`` plus same-key jobs arriving within ``batch_wait`` (others keep their order)."""
        batch = [first]
        others: list[_Job] = []
        for job in list(self._pending):  # set aside earlier: same key joins now
            if len(batch) >= self.max_batch:
                break
            if job.key == first.key:
                self._pending.remove(job)
                if job.future.set_running_or_notify_cancel():
                    batch.append(job)
        deadline = time.monotonic() + self.batch_wait
        while len(batch) < self.max_batch:
            left = deadline - time.monotonic()
            if self._incoming == 0 and self._queue.empty():
                break  # nothing on its way: waiting would only add latency
            try:
                job = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if job is not _STOP and job.key == first.key:
                if job.future.set_running_or_notify_cancel():
                    batch.append(job)
            else:
                others.append(job)
                if job is _STOP:
                    break
        self._pending.extend(others)
        return batch

    def _run_batch(self, batch: list[_Job]) -> None:
        phrases, modality, masks, score_threshold, top_k = batch[0].key
        with self._lock:
            self.counters["batches"] += 1
            self.counters["batched_images"] += len(batch)
            self.counters["largest_batch"] = max(self.counters["largest_batch"], len(batch))
        try:
            results = self.grounder.ground([j.image for j in batch], list(phrases), modality=modality, masks=masks,
                                           score_threshold=score_threshold, top_k=top_k)
        except Exception as exc:
            if len(batch) == 1 or isinstance(exc, STOPPED):
                for job in batch:
                    self._finish(job, error=exc)
                return
            log.info("a batch of %d failed (%s); retrying its images one by one", len(batch), exc)
            for job in batch:
                try:
                    res = self.grounder.ground([job.image], list(phrases), modality=modality, masks=masks,
                                               score_threshold=score_threshold, top_k=top_k)
                except Exception as one:
                    self._finish(job, error=one)
                else:
                    self._finish(job, result=res[0])
            return
        for job, res in zip(batch, results):
            self._finish(job, result=res)

    def _run_call(self, job: _Job) -> None:
        with self._lock:
            self.counters["calls"] += 1
        try:
            result = job.fn(self.grounder)
        except Exception as exc:
            self._finish(job, error=exc)
        else:
            self._finish(job, result=result)

    def _finish(self, job: _Job, *, result: Any = None, error: BaseException | None = None) -> None:
        with self._lock:
            stopped = isinstance(error, STOPPED) or job.stopped  # e.g. its upload was removed as the request ended
            self.counters["done" if error is None else "cancelled" if stopped else "failed"] += 1
        if error is not None:
            if not stopped:
                log.debug("a worker job failed: %s: %s", type(error).__name__, error)
            job.future.set_exception(error)
        else:
            job.future.set_result(result)

    def _fail_pending(self) -> None:
        """On stop: fail whatever is still waiting."""
        while True:
            job = self._next(0)
            if job is None:
                return
            if job is not _STOP and job.future.set_running_or_notify_cancel():
                job.future.set_exception(ServerBusy("the service is shutting down"))
