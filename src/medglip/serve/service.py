"""The state one app holds (grounder, worker, limits, LLM) and how results become HTTP answers.

- :class:`Service`: awaits worker futures and maps failures to HTTP: a
  :class:`~medglip.errors.MedglipError` (the user's input) → 422 with its message (temporary paths
  replaced by the upload's file name), more work than one request may cost (:class:`~.budget.WorkLimit`) →
  413, a failing LLM endpoint (``medglip.vqa.LLMError``) → 502 that
  says only how it failed (never its address, credentials or reply, which go to the log, redacted),
  a full queue or memory budget → 503 with ``Retry-After``, work stopped by the request's deadline →
  504, a decompression bomb → 413, anything else → 500 with a generic message while the traceback
  goes to the log.
- :class:`WorkerGrounder`: what ``medglip.vqa.ask`` / ``medglip.report.make_report`` receive: it
  looks like the Grounder, but its ``ground`` / ``ground_volume`` run on the worker thread (single
  2D images join the batches), so the rest of those functions (context, sentences, an LLM call) runs
  in a request thread without holding the model.
- :func:`jsonable` / :func:`png_base64`: JSON-safe values (numpy → Python, NaN → null) and images.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import io
import logging
import math
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from fastapi import HTTPException
from PIL import Image

from ..errors import MedglipError
from ..infer.api import GrounderLike
from ..infer.masks import Masks
from ..infer.results import GroundingResult
from ..infer.volume import VolumeGroundingResult
from ..io.policy import ReadTimeout
from .batcher import Batcher, ServerBusy
from .budget import Cancelled, MemoryBudget, MemoryBusy, WorkLimit, current_scope
from .config import ServiceConfig
from .pool import WorkPool
from .uploads import Upload, reader_message

log = logging.getLogger("medglip.serve")

INTERNAL = "internal server error while processing the request; the traceback is in the server log"


@dataclass
class Service:
    """Everything the endpoints share; ``app.state.service``."""

    grounder: GrounderLike
    config: ServiceConfig
    batcher: Batcher
    llm: Any = None
    counters: dict[str, int] = field(default_factory=lambda: {"requests": 0, "2xx": 0, "4xx": 0, "5xx": 0})
    tokenizer: Any = None  # a private copy of the model's tokenizer, for request threads
    tokenizer_lock: threading.Lock = field(default_factory=threading.Lock)
    budget: MemoryBudget = field(default_factory=lambda: MemoryBudget(ServiceConfig().max_inflight_bytes))
    pool: WorkPool = field(default_factory=lambda: WorkPool(ServiceConfig().io_workers))

    @classmethod
    def create(cls, grounder: GrounderLike, config: ServiceConfig, llm: Any = None) -> Service:
        batcher = Batcher(
            grounder,
            max_batch=config.max_batch,
            batch_wait_ms=config.batch_wait_ms,
            max_queue=config.max_queue,
            max_client_jobs=config.max_client_queue,
        )
        model: Any = getattr(grounder, "model", None)  # GrounderLike promises no model (fakes have none)
        try:
            batcher.install_stop_hooks(model)
        except AttributeError:  # a grounder without a model: jobs stop only between calls
            pass
        try:
            tokenizer = copy.deepcopy(model.tokenizer)
        except Exception:  # a grounder without a model / tokenizer: no vocabulary check
            tokenizer = None
        return cls(
            grounder,
            config,
            batcher,
            llm,
            tokenizer=tokenizer,
            budget=MemoryBudget(config.max_inflight_bytes),
            pool=WorkPool(config.io_workers),
        )

    async def run(self, fn: Any, *args: Any) -> Any:
        """``fn(*args)`` on the bounded I/O pool (unpacking, parsing, decoding), off the event loop."""
        return await self.pool.run(fn, *args)

    def check_tokens(self, phrases: tuple[str, ...] | None, field: str = "phrases") -> None:
        """422 for phrases made only of characters the model's vocabulary does not know (they would
        give the model an empty prompt)."""
        if self.tokenizer is None or not phrases:
            return
        special = set(getattr(self.tokenizer, "all_special_ids", ()) or ())
        with self.tokenizer_lock:
            lost = [
                p
                for p in phrases
                if not any(i not in special for i in self.tokenizer(p, add_special_tokens=False)["input_ids"])
            ]
        if lost:
            raise HTTPException(
                422, f"{field}: {', '.join(repr(p) for p in lost)}: no word or symbol the model's vocabulary knows"
            )

    def check_masks(self, masks: Masks) -> Masks:
        """422 (naming ``masks``) when the loaded model cannot give masks from that source."""
        check = getattr(self.grounder, "mask_source", None)
        if masks and check is not None:
            try:
                check(masks)
            except MedglipError as exc:
                raise HTTPException(422, f"masks: {exc}") from None
        return masks

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.grounder.config.modalities)

    def model_info(self) -> dict[str, Any]:
        cfg = self.grounder.config
        return {
            "preset": cfg.name,
            "image_size": int(cfg.image_size),
            "modalities": list(cfg.modalities),
            "known_phrases": len(self.grounder.known_phrases),
        }

    async def wait(self, future: Future, upload: Upload | None = None) -> Any:
        """The result of a worker future, failures mapped to HTTP errors (see the module docstring)."""
        try:
            return await asyncio.wrap_future(future)
        except BaseException as exc:
            raise http_error(exc, upload) from None

    def submit(self, fn: Any) -> Future:
        """Queue ``fn(grounder)`` on the worker; 503 when the queue is full."""
        try:
            return self.batcher.submit_call(fn)
        except ServerBusy as exc:
            raise busy(exc) from None


def busy(exc: BaseException) -> HTTPException:
    return HTTPException(
        503, f"server busy: {exc}".replace("server busy: server busy", "server busy"), headers={"Retry-After": "1"}
    )


def http_error(exc: BaseException, upload: Upload | None = None) -> BaseException:
    """The HTTP answer for an exception raised while serving a request."""
    if isinstance(exc, (HTTPException, asyncio.CancelledError, KeyboardInterrupt, SystemExit)):
        return exc
    if isinstance(exc, (ServerBusy, MemoryBusy)):
        return busy(exc)
    if isinstance(exc, WorkLimit):
        return HTTPException(413, str(exc))
    if isinstance(exc, (Cancelled, ReadTimeout)):
        return HTTPException(504, f"deadline: the request's work was stopped ({_reason(exc)})")
    if isinstance(exc, Image.DecompressionBombError):
        name = f"file {upload.filename!r}" if upload else "the image"
        return HTTPException(413, f"{name}: too many pixels, refused as a possible decompression bomb ({exc})")
    if isinstance(exc, MemoryError):
        return HTTPException(413, "the input is too large to process in memory")
    if isinstance(exc, MedglipError):
        if _is_llm_error(exc):  # the language model endpoint failed, not the request
            log.warning("LLM endpoint failed: %s", exc)  # LLMError texts are redacted (medglip.vqa.llm)
            return HTTPException(
                502,
                f"the language model endpoint failed ({getattr(exc, 'public', 'error')}); "
                "the details are in the server log",
            )
        return HTTPException(422, reader_message(exc, upload) if upload else str(exc))
    log.error("internal error serving a request", exc_info=(type(exc), exc, exc.__traceback__))
    return HTTPException(500, INTERNAL)


def _reason(exc: BaseException) -> str:
    scope = current_scope()
    if scope is not None and scope.reason:
        return scope.reason
    return "the deadline passed" if isinstance(exc, ReadTimeout) else str(exc)


def _is_llm_error(exc: BaseException) -> bool:
    try:
        from ..vqa import LLMError
    except ImportError:  # pragma: no cover - medglip.vqa missing
        return False
    return isinstance(exc, LLMError)


class WorkerGrounder:
    """A :class:`~medglip.infer.api.GrounderLike` whose model calls run on the service's worker thread.

    ``ground_one(image, ...)`` joins the batches of ``/v1/ground``; lists of images, volumes and
    modality look-ups run as one worker job each; ``ground_file`` dispatches on what was read.
    ``config``, ``input_config`` and ``known_phrases`` are the real grounder's. Call it from a
    request thread, never from the worker itself.
    """

    def __init__(self, batcher: Batcher) -> None:
        self._batcher = batcher
        inner: GrounderLike = batcher.grounder
        self.config = inner.config
        self.input_config = inner.input_config
        self.known_phrases = tuple(inner.known_phrases)
        self.threshold_for = inner.threshold_for
        self.phrases_for = inner.phrases_for

    def modality_of(self, image: Any, modality: str | None = None) -> str:
        return self._call(lambda g: g.modality_of(image, modality))

    def ground_file(
        self,
        image: Any,
        phrases: Any,
        *,
        modality: str | None = None,
        masks: Masks = False,
        score_threshold: Any = "calibrated",
        plane: str = "axial",
        top_k: int | None = None,
    ) -> Any:
        from ..infer.inputs import Volume, read_input

        item = read_input(image)
        if isinstance(item, Volume):
            return self.ground_volume(
                item, phrases, modality=modality, masks=masks, score_threshold=score_threshold, plane=plane
            )
        return self.ground_one(
            item, phrases, modality=modality, masks=masks, score_threshold=score_threshold, top_k=top_k
        )

    def ground_one(
        self,
        image: Any,
        phrases: Any,
        *,
        modality: str | None = None,
        masks: Masks = False,
        score_threshold: Any = "calibrated",
        top_k: int | None = None,
    ) -> GroundingResult:
        names = (phrases,) if isinstance(phrases, str) else tuple(phrases)
        fut = self._batcher.submit_ground(
            image, names, modality=modality, masks=masks, score_threshold=score_threshold, top_k=top_k
        )
        return _result(fut)

    def ground(
        self,
        images: Any,
        phrases: Any,
        *,
        modality: str | None = None,
        masks: Masks = False,
        score_threshold: Any = "calibrated",
        top_k: int | None = None,
    ) -> list[GroundingResult]:
        return self._call(
            lambda g: g.ground(
                images, phrases, modality=modality, masks=masks, score_threshold=score_threshold, top_k=top_k
            )
        )

    def ground_volume(self, *args: Any, **kwargs: Any) -> VolumeGroundingResult:
        return self._call(lambda g: g.ground_volume(*args, **kwargs))

    def _call(self, fn: Any) -> Any:
        return _result(self._batcher.submit_call(fn))


def _result(fut: Future) -> Any:
    """A worker future's result, waited for in a request thread until the request's deadline (or until
    the request is cancelled): then :class:`~.budget.Cancelled`."""
    scope = current_scope()
    while True:
        try:
            return fut.result(timeout=0.25 if scope is not None else None)
        except TimeoutError:
            if scope is not None and scope.stopped:
                fut.cancel()
                scope.check()


def jsonable(value: Any) -> Any:
    """``value`` with numpy scalars / arrays, tuples and paths made JSON-safe; NaN / inf → None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if value is None or isinstance(value, str):
        return value
    return str(value)


def png_base64(image: Image.Image | np.ndarray | None) -> str | None:
    """A PNG of ``image`` as base64 text (no ``data:`` prefix); None stays None."""
    if image is None:
        return None
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=False, compress_level=3)
    return base64.b64encode(buf.getvalue()).decode("ascii")
