"""One model, shared fairly: requests reach the Grounder through per-client queues served in turn.

The :class:`~medglip.infer.Grounder` is not thread-safe, so exactly one thread at a time runs it:

- :meth:`Batcher.submit_ground` queues one 2D image with its prompt. The worker takes the first
  waiting job, then waits up to ``batch_wait_ms`` for more jobs with the SAME batching key
  ``(phrases, modality, masks, score_threshold, top_k)`` and grounds them all in ONE call
  ``grounder.ground([img1, img2, ...], phrases, ...)`` (at most ``max_batch`` images). Jobs with
  another key keep their place. The wait is skipped when no same-key job waits and no request is on
  its way (:meth:`Batcher.announce` / :meth:`Batcher.withdraw` bracket the reading of an upload), so a
  lone client pays no batching delay.
- :meth:`Batcher.submit_call` queues any other work (a volume, a whole VQA / report step): a
  function of the grounder, run on a thread of its own that holds the model only while the worker
  lets it (below).

Fair shares. Every job belongs to its request's client (:attr:`~.budget.RequestScope.client`: the API
key's name, else the client's address). Waiting jobs sit in one queue per client and the worker serves
the clients in turn, one job (or one batch) per turn, so a client with many requests cannot make
another wait behind all of them. A long call (a volume of many slices) is shared too: after each slice
batch (:data:`medglip.infer.volume.BETWEEN_BATCHES`) it hands the model back when another client is
waiting, and goes on at its client's next turn, so a second client's request waits for one slice
batch, not for the whole volume. A client may have at most ``max_client_jobs`` jobs waiting
(:class:`ServerBusy` for that client only; the others still get in) and all clients together
``max_queue``.

Each job has a :class:`concurrent.futures.Future`; asyncio handlers await it with
:func:`asyncio.wrap_future` (delivery through ``loop.call_soon_threadsafe``), plain threads call
``.result()``. An exception fails only its own job: when a batch fails, its images are retried one
by one so that only the bad one gets the error.

Deadlines and cancellation: a job remembers the :class:`~.budget.RequestScope` of the request that
submitted it (and runs in a copy of that request's context). A job whose request has been cancelled
or is past its deadline is dropped before it runs (:class:`~.budget.Cancelled`), a call stops at its
next slice batch, and running model work is stopped at the next forward pass of the model:
:meth:`Batcher.install_stop_hooks` registers a ``torch.nn.Module`` forward pre-hook on the model and
its direct children that raises :class:`~.budget.Cancelled` on the thread holding the model once every
job it runs has stopped. Work outside the forward passes (reading and slicing a volume,
post-processing) is stopped by a watchdog thread: ``watchdog_s`` seconds after the running jobs stopped
it interrupts the thread holding the model (:mod:`.interrupt`). ``stats()`` reports ``cancelled``,
``interrupted``, ``handed_over`` (times a call lent the model to another client), ``longest_job_s``
(the longest time one job held the model at a stretch) and ``busy_s``.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..infer.api import GrounderLike
from ..infer.masks import Masks
from ..infer.volume import BETWEEN_BATCHES
from ..io.policy import ReadTimeout
from .budget import Cancelled, current_scope
from .interrupt import WorkerStopped, clear_in_thread, raise_in_thread

#: what stops a job of a request whose deadline passed or whose client left
STOPPED = (Cancelled, ReadTimeout)

log = logging.getLogger(__name__)


class ServerBusy(Exception):
    """The request queue (or this client's share of it) is full (the service answers 503 with ``Retry-After``)."""


class _GroundKey(NamedTuple):
    """What a 2D job asks of the model: jobs with equal keys are grounded in one batch."""

    phrases: tuple[str, ...]
    modality: str | None
    masks: Masks
    score_threshold: float | str | None
    top_k: int | None


@dataclass
class _Job:
    """One unit of work: a 2D image to ground (``key`` set) or a function of the grounder (``fn``)."""

    future: Future
    key: _GroundKey | None = None
    image: Any = None
    fn: Callable[[Any], Any] | None = None
    queued_at: float = field(default_factory=time.monotonic)
    scope: Any = None  # the submitting request's RequestScope (None outside requests)
    context: contextvars.Context = field(default_factory=contextvars.copy_context)
    call: _Call | None = None  # a started call: its thread, paused between slice batches

    @property
    def stopped(self) -> bool:
        return self.scope is not None and self.scope.stopped

    @property
    def client(self) -> str:
        return getattr(self.scope, "client", "") or ""


class _FairQueue:
    """Waiting jobs: one FIFO per client, the clients served in turn (guarded by the batcher's lock)."""

    def __init__(self) -> None:
        self.fifos: dict[str, deque[_Job]] = {}
        self.turns: deque[str] = deque()  # clients with waiting jobs, the next one first
        self.size = 0

    def push(self, job: _Job, *, front: bool = False) -> None:
        """Queue ``job`` at the end of its client's FIFO (``front``: at its head, for a paused call)."""
        fifo = self.fifos.setdefault(job.client, deque())
        fifo.appendleft(job) if front else fifo.append(job)
        if job.client not in self.turns:
            self.turns.append(job.client)
        self.size += 1

    def pop(self) -> _Job | None:
        """The next client's oldest job; that client's turn comes again after the others'."""
        if not self.turns:
            return None
        client = self.turns.popleft()
        return self._take(client, self.fifos[client][0])

    def take(self, key: _GroundKey) -> _Job | None:
        """The first waiting 2D job with batching key ``key`` (clients in turn order), taken out of its queue."""
        for client in self.turns:
            for job in self.fifos[client]:
                if job.key == key:
                    return self._take(client, job)
        return None

    def _take(self, client: str, job: _Job) -> _Job:
        fifo = self.fifos[client]
        fifo.remove(job)
        self.size -= 1
        if not fifo:
            del self.fifos[client]
            if client in self.turns:
                self.turns.remove(client)
        elif client not in self.turns:
            self.turns.append(client)  # served: its next job waits for the other clients' turns
        return job

    def count(self, client: str) -> int:
        return len(self.fifos.get(client, ()))

    def others(self, client: str) -> bool:
        """Whether a client other than ``client`` has a job waiting."""
        return any(c != client for c in self.turns)


class Batcher:
    """The model worker, its fair queue and the threads of call jobs (see the module docstring).

    Args:
        grounder: the object all jobs run against (its ``ground`` is called with lists of images).
        max_batch: most images per batched ``ground`` call.
        batch_wait_ms: how long to wait for same-key jobs after the first one of a batch.
        max_queue: most jobs waiting, all clients together; :meth:`submit_ground` / :meth:`submit_call`
            raise :class:`ServerBusy` beyond it.
        max_client_jobs: most jobs one client may have waiting (its fair share of the queue).
        watchdog_s: seconds after the running jobs stopped before the thread holding the model is interrupted.
    """

    def __init__(
        self,
        grounder: GrounderLike,
        *,
        max_batch: int = 8,
        batch_wait_ms: float = 10.0,
        max_queue: int = 256,
        max_client_jobs: int | None = None,
        watchdog_s: float = 0.5,
    ) -> None:
        self.grounder = grounder
        self.max_batch = max(1, int(max_batch))
        self.batch_wait = max(0.0, float(batch_wait_ms)) / 1000.0
        self.max_queue = max(1, int(max_queue))
        self.max_client_jobs = self.max_queue if max_client_jobs is None else max(1, int(max_client_jobs))
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._waiting = _FairQueue()
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._incoming = 0  # requests announced (being read / decoded) but not queued yet
        self._running: list[_Job] = []  # the jobs the model works for now
        self._holder: threading.Thread | None = None  # the thread running the model now (worker or a call's)
        self._stopped_since: float | None = None  # when the watchdog first saw the running jobs all stopped
        self.watchdog_s = float(watchdog_s)
        self._hooks: list[Any] = []
        self.counters: dict[str, float] = {
            "jobs": 0,
            "done": 0,
            "failed": 0,
            "rejected_busy": 0,
            "batches": 0,
            "batched_images": 0,
            "largest_batch": 0,
            "calls": 0,
            "cancelled": 0,
            "interrupted": 0,
            "handed_over": 0,
            "longest_job_s": 0.0,
            "busy_s": 0.0,
        }

    # ------------------------------------------------------------------------------ submit
    def submit_ground(
        self,
        image: Any,
        phrases: tuple[str, ...],
        *,
        modality: str | None = None,
        masks: Masks = False,
        score_threshold: float | str | None = None,
        top_k: int | None = None,
    ) -> Future:
        """Queue one image; the future's result is its :class:`~medglip.infer.GroundingResult`."""
        key = _GroundKey(
            tuple(phrases), modality, masks if isinstance(masks, str) else bool(masks), score_threshold, top_k
        )
        return self._put(_Job(Future(), key=key, image=image))

    def submit_call(self, fn: Callable[[Any], Any]) -> Future:
        """Queue ``fn(grounder)`` to run with the model to itself (lent to others between slice batches);
        the future holds its return value."""
        return self._put(_Job(Future(), fn=fn))

    def _put(self, job: _Job) -> Future:
        if self._stopped:
            raise ServerBusy("the service is shutting down")
        job.scope = current_scope()
        self._ensure_started()
        with self._cond:
            full = None
            if self._waiting.size >= self.max_queue:
                full = f"server busy: {self.max_queue} requests are already waiting"
            elif self._waiting.count(job.client) >= self.max_client_jobs:
                full = (
                    f"server busy: this client already has {self.max_client_jobs} requests waiting for the model "
                    "(max_client_queue)"
                )
            if full is not None:
                self.counters["rejected_busy"] += 1
                raise ServerBusy(full)
            self._waiting.push(job)
            self.counters["jobs"] += 1
            self._cond.notify_all()
        return job.future

    def announce(self) -> None:
        """A 2D request is on its way (its upload is being read): worth waiting for it to batch."""
        with self._lock:
            self._incoming += 1

    def withdraw(self) -> None:
        """The announced request was queued or gave up."""
        with self._cond:
            self._incoming = max(0, self._incoming - 1)
            self._cond.notify_all()

    # ------------------------------------------------------------------------------ state
    @property
    def queue_depth(self) -> int:
        """Jobs waiting for the model (paused calls included)."""
        return self._waiting.size

    def stats(self) -> dict[str, float]:
        """A copy of the counters plus the current queue depth."""
        with self._lock:
            out = dict(self.counters)
            out["queue_depth"] = self._waiting.size
            out["clients_waiting"] = len(self._waiting.turns)
        out["longest_job_s"] = round(out["longest_job_s"], 3)
        out["busy_s"] = round(out["busy_s"], 3)
        out["max_queue"] = self.max_queue
        return out

    def _ensure_started(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="medglip-grounder", daemon=True)
                self._thread.start()
                threading.Thread(
                    target=self._watchdog, args=(self._thread,), name="medglip-watchdog", daemon=True
                ).start()

    def _watchdog(self, worker: threading.Thread) -> None:
        """Interrupt the thread holding the model ``watchdog_s`` after every running job has stopped."""
        period = min(0.1, max(0.01, self.watchdog_s / 5))
        while worker.is_alive():
            time.sleep(period)
            with self._lock:  # threads leave a job under this lock: no interrupt can hit the next one
                jobs, holder = self._running, self._holder
                if not jobs or holder is None or not (self._stopped or all(j.stopped for j in jobs)):
                    self._stopped_since = None
                    continue
                now = time.monotonic()
                if self._stopped_since is None:
                    self._stopped_since = now
                elif now - self._stopped_since >= self.watchdog_s and raise_in_thread(holder, WorkerStopped):
                    self.counters["interrupted"] += 1
                    self._stopped_since = now + 3600  # once per job; it is leaving

    def install_stop_hooks(self, model: Any) -> int:
        """Let the batcher stop running model work whose request was cancelled or passed its deadline: a
        forward pre-hook on ``model`` (a ``torch.nn.Module``) and on each of its direct children raises
        :class:`~.budget.Cancelled` on the thread holding the model once every job it runs has stopped.
        Returns the number of hooks (0 when ``model`` is no module)."""
        if not hasattr(model, "register_forward_pre_hook"):
            return 0

        def hook(module: Any, args: Any) -> None:
            if threading.current_thread() is self._holder:
                self._check_running()

        for m in [model, *getattr(model, "children", lambda: [])()]:
            self._hooks.append(m.register_forward_pre_hook(hook))
        return len(self._hooks)

    def _check_running(self) -> None:
        jobs = self._running
        if jobs and (self._stopped or all(j.stopped for j in jobs)):
            reasons = {j.scope.reason or "deadline passed" for j in jobs if j.scope is not None} or {"shutting down"}
            raise Cancelled(f"stopped on the model worker: {', '.join(sorted(reasons))}")

    def close(self, timeout: float | None = 5.0) -> None:
        """Stop the worker: the running job is stopped (watchdog), waiting ones fail, later submissions
        raise :class:`ServerBusy`."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        for h in self._hooks:
            h.remove()
        self._hooks = []
        thread = self._thread
        if thread is not None and thread.is_alive():
            thread.join(timeout)

    # ------------------------------------------------------------------------------ worker
    def _next(self) -> _Job | None:
        """The next client's next job (blocks); None once the batcher is closing."""
        with self._cond:
            while self._waiting.size == 0 and not self._stopped:
                self._cond.wait()
            return None if self._stopped else self._waiting.pop()

    def _run(self) -> None:
        while True:
            try:
                job = self._next()
                if job is None:
                    self._fail_pending()
                    return
                if job.call is not None:  # a paused call: its turn again
                    self._resume(job)
                    continue
                if not job.future.set_running_or_notify_cancel():
                    continue  # the client went away while the job waited
                if self._drop_if_stopped(job):
                    continue
                if job.key is None:
                    with self._lock:
                        self.counters["calls"] += 1
                    job.call = _Call(self, job)
                    self._resume(job)
                else:
                    batch = [j for j in self._collect(job, job.key) if not self._drop_if_stopped(j)]
                    if batch:
                        self._timed(batch, job.key)
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

    def _timed(self, batch: list[_Job], key: _GroundKey) -> None:
        """Ground ``batch`` on this (the worker) thread, marked as running for the stop hooks and the watchdog."""
        with self._lock:
            self._running, self._holder = batch, self._thread
        t0 = time.monotonic()
        try:
            batch[0].context.run(self._run_batch, batch, key)
        finally:
            self._leave_job()
            self._count_time(time.monotonic() - t0)

    def _count_time(self, dt: float) -> None:
        with self._lock:
            self.counters["busy_s"] += dt
            self.counters["longest_job_s"] = max(self.counters["longest_job_s"], dt)

    def _leave_job(self) -> None:
        """The worker is done with its jobs: unresolved ones fail, a pending interrupt is withdrawn."""
        with self._lock:
            jobs, self._running, self._holder = self._running, [], None
            if self._thread is not None:
                clear_in_thread(self._thread)
        for job in jobs:
            if not job.future.done():
                self._finish(job, error=WorkerStopped())

    def _resume(self, job: _Job) -> None:
        """Lend the model to a call until it pauses (then it waits for its client's next turn) or ends."""
        call = job.call
        assert call is not None
        with self._lock:
            self._running, self._holder = [job], call.thread
        t0 = time.monotonic()
        call.resume()
        self._count_time(time.monotonic() - t0)
        with self._lock:  # the call handed back under this lock already; this covers a call that died
            self._running, self._holder = [], None
        if call.ended:
            if not job.future.done():  # its thread died before it could answer (an interrupt in its last lines)
                self._finish(job, error=WorkerStopped())
            return
        with self._cond:
            self._waiting.push(job, front=True)
            self.counters["handed_over"] += 1

    def _hand_back(self, call: _Call) -> None:
        """(a call's thread) Stop being the model's holder; a pending interrupt for it is withdrawn (under the
        lock the watchdog decides by, so none can follow)."""
        with self._lock:
            if self._holder is call.thread:
                self._running, self._holder = [], None
            clear_in_thread(call.thread)

    def others_waiting(self, job: _Job) -> bool:
        with self._lock:
            return self._waiting.others(job.client)

    def _collect(self, first: _Job, key: _GroundKey) -> list[_Job]:
        """``first`` plus same-key jobs waiting or arriving within ``batch_wait`` (others keep their place)."""
        batch = [first]
        deadline = time.monotonic() + self.batch_wait
        with self._cond:
            while len(batch) < self.max_batch and not self._stopped:
                job = self._waiting.take(key)
                if job is not None:
                    if job.future.set_running_or_notify_cancel():
                        batch.append(job)
                    continue
                left = deadline - time.monotonic()
                if left <= 0 or self._incoming == 0:
                    break  # nothing of this key on its way: waiting would only add latency
                self._cond.wait(left)
        return batch

    def _run_batch(self, batch: list[_Job], key: _GroundKey) -> None:
        phrases, modality, masks, score_threshold, top_k = key
        with self._lock:
            self.counters["batches"] += 1
            self.counters["batched_images"] += len(batch)
            self.counters["largest_batch"] = max(self.counters["largest_batch"], len(batch))
        try:
            results = self.grounder.ground(
                [j.image for j in batch],
                list(phrases),
                modality=modality,
                masks=masks,
                score_threshold=score_threshold,
                top_k=top_k,
            )
        except Exception as exc:
            if len(batch) == 1 or isinstance(exc, STOPPED):
                for job in batch:
                    self._finish(job, error=exc)
                return
            log.info("a batch of %d failed (%s); retrying its images one by one", len(batch), exc)
            for job in batch:
                try:
                    alone = self.grounder.ground(
                        [job.image],
                        list(phrases),
                        modality=modality,
                        masks=masks,
                        score_threshold=score_threshold,
                        top_k=top_k,
                    )
                except Exception as one:
                    self._finish(job, error=one)
                else:
                    self._finish(job, result=alone[0])
            return
        for job, res in zip(batch, results, strict=True):
            self._finish(job, result=res)

    def _finish(self, job: _Job, *, result: Any = None, error: BaseException | None = None) -> None:
        if job.future.done():
            return
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
        """On stop: fail whatever is still waiting; paused calls are resumed to end their threads."""
        while True:
            with self._cond:
                job = self._waiting.pop()
            if job is None:
                return
            if job.call is not None:
                self._resume(job)  # its pause sees the batcher closing and raises: the thread ends
            elif job.future.set_running_or_notify_cancel():
                job.future.set_exception(ServerBusy("the service is shutting down"))


class _Call:
    """The thread of one call job. It runs only while the worker lends it the model (:meth:`resume`), and
    between slice batches (:data:`~medglip.infer.volume.BETWEEN_BATCHES`) it counts the request's slices,
    stops when the request has, and hands the model back when another client's job is waiting."""

    def __init__(self, batcher: Batcher, job: _Job) -> None:
        self.batcher, self.job = batcher, job
        self._go, self._back = threading.Semaphore(0), threading.Semaphore(0)
        self.ended = False
        self.thread = threading.Thread(
            target=job.context.run, args=(self._main,), name="medglip-model-call", daemon=True
        )
        self.thread.start()

    def resume(self) -> None:
        """(the worker) Let the call run until it pauses or ends."""
        self._go.release()
        while not self._back.acquire(timeout=0.5):
            if not self.thread.is_alive():  # ended without handing back (an interrupt in its last lines)
                self.ended = True
                return

    def _main(self) -> None:
        self._go.acquire()
        BETWEEN_BATCHES.set(self.pause)  # in the job's own context (this thread runs in it)
        try:
            assert self.job.fn is not None  # a call job (submit_call): the worker made a _Call of it
            result = self.job.fn(self.batcher.grounder)
        except BaseException as exc:  # noqa: BLE001 - the job's answer, whatever stopped it
            self.batcher._finish(self.job, error=exc)
        else:
            self.batcher._finish(self.job, result=result)
        finally:
            self.ended = True
            self.batcher._hand_back(self)
            self._back.release()

    def pause(self, slices: int) -> None:
        """(this call's thread, after a slice batch) see the class docstring."""
        job, batcher = self.job, self.batcher
        if job.scope is not None:
            job.scope.charge_slices(slices)  # WorkLimit past max_slices
            job.scope.check()
        if batcher._stopped:
            raise Cancelled("stopped: the service is shutting down")
        if not batcher.others_waiting(job):
            return
        batcher._hand_back(self)
        self._back.release()
        self._go.acquire()
        if job.stopped or batcher._stopped:
            why = job.scope.reason if job.scope else "shutting down"
            raise Cancelled(f"stopped while waiting for the model: {why}")
