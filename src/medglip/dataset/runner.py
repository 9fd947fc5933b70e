"""Run a build: list cases, process them in parallel (optionally one shard of them), resume after a crash.

One driver for every build: a single source (a :class:`BuildConfig`) and a recipe (a :class:`Recipe`)
are both a plan of parts (:mod:`medglip.dataset.plan`) whose cases go through the same steps.

Each case is processed independently and ends with one atomically written ``records/<key>.json``
(or ``failures/<key>.json``); a case without a record is redone from scratch on the next run, so a
build killed at any moment and started again with the same command gives exactly what an
uninterrupted build gives. When every case of every shard is settled the dataset is merged.
"""

from __future__ import annotations

import errno
import logging
import multiprocessing as mp
import traceback
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ..case import CaseRef
from ..core.files import atomic_write_json, read_json
from ..errors import MedglipError
from ..ontology import load_ontology
from ..sources import load_case
from .config import BuildConfig
from .merging import MergeResult, merge
from .plan import Listing, Part, Plan, part_refs, plan_of
from .process import CaseBuilder
from .recipe import Recipe

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0-based, like SLURM array ids and torchrun ranks)."""

    index: int
    count: int

    @staticmethod
    def parse(spec: str) -> Shard:
        try:
            k, n = (int(x) for x in spec.split("/"))
        except ValueError:
            raise MedglipError(f"--shard must look like K/N (e.g. 0/4), got {spec!r}") from None
        if n < 1 or not 0 <= k < n:
            raise MedglipError(f"--shard {spec}: need 0 <= K < N (K is 0-based)")
        return Shard(k, n)

    def select(self, items: list[T]) -> list[T]:
        """Every ``count``-th item of the sorted case list, starting at ``index``."""
        return [r for i, r in enumerate(items) if i % self.count == self.index]


@dataclass
class BuildResult:
    """What one run of :func:`build` did (``done``/``skipped``/``failed`` are case keys)."""

    out_dir: Path
    n_cases: int
    done: list[str] = field(default_factory=list)  # processed in this run
    skipped: list[str] = field(default_factory=list)  # already done by an earlier run
    failed: dict[str, str] = field(default_factory=dict)
    failed_sources: dict[str, str] = field(default_factory=dict)  # a recipe's sources that could not be listed
    built_by_source: dict[str, int] = field(default_factory=dict)
    pending: int = 0  # cases of other shards still to do
    merged: MergeResult | None = None


RecipeBuildResult = BuildResult  # the name before recipes and single sources shared one driver


def _record_path(out: Path, key: str) -> Path:
    return out / "records" / f"{key}.json"


def _failure_path(out: Path, key: str) -> Path:
    return out / "failures" / f"{key}.json"


def clear_temps(path: Path) -> None:
    """Remove the temporary files an interrupted atomic write of ``path`` left beside it."""
    if path.parent.is_dir():
        for tmp in path.parent.glob(f".{path.name}.*.tmp"):
            tmp.unlink(missing_ok=True)


def is_done(out: Path, key: str, fingerprint: str) -> bool:
    p = _record_path(out, key)
    if not p.exists():
        return False
    try:
        return read_json(p).get("fingerprint") == fingerprint
    except (OSError, ValueError):
        return False  # unreadable record: redo the case


class DiskFull(MedglipError):
    """The output folder's device is full (or over quota): the build stops, finished cases are kept."""


def _disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def _disk_full_error(out: Path) -> DiskFull:
    return DiskFull(
        f"no space left on the device holding {out}: the build stopped; free some space and run the "
        "same command again to resume (finished cases are kept)"
    )


_WORKER_BUILDERS: list[CaseBuilder] = []  # a worker process's builder of each part, by part index


def _init_worker(configs: list[dict], out_dir: str, threads: int) -> None:
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    onto = load_ontology()
    _WORKER_BUILDERS[:] = [
        CaseBuilder(config=BuildConfig.from_json(c), out_dir=Path(out_dir), ontology=onto) for c in configs
    ]


def _process_in_worker(item: tuple[int, CaseRef]) -> tuple[str, str | None]:
    part, ref = item
    return _process(ref, _WORKER_BUILDERS[part])


def _process(ref: CaseRef, builder: CaseBuilder) -> tuple[str, str | None]:
    """Build one case and write its record or failure file. Returns ``(key, error or None)``."""
    out = builder.out
    for path in (_record_path(out, ref.key), _failure_path(out, ref.key)):
        clear_temps(path)  # a run killed while writing this case's files left them; only we write them now
    try:
        record = builder(load_case(ref), ref.key)
        atomic_write_json(_record_path(out, ref.key), record)
        _failure_path(out, ref.key).unlink(missing_ok=True)
        return ref.key, None
    except Exception as exc:  # one bad case must not stop the build: report it and go on
        if _disk_full(exc):  # not the case's fault, and every further write would fail too
            raise _disk_full_error(out) from None
        files = [str(p) for p in (*ref.image_paths, *ref.label_paths)]
        reason = str(exc) if isinstance(exc, MedglipError) else f"{type(exc).__name__}: {exc}"
        try:
            atomic_write_json(
                _failure_path(out, ref.key),
                {
                    "key": ref.key,
                    "case_id": ref.case_id,
                    "source": ref.source,
                    "files": files,
                    "error": type(exc).__name__,
                    "reason": reason,
                    "traceback": traceback.format_exc(limit=6),
                },
                indent=1,
            )
        except OSError as write_error:
            if _disk_full(write_error):
                raise _disk_full_error(out) from None
            raise
        log.warning("case %s failed: %s", ref.key, reason)
        return ref.key, reason


def run_pool(
    todo: list[T],
    fn: Callable[[T], tuple[str, str | None]],
    *,
    workers: int,
    initializer: Callable[..., None],
    initargs: tuple,
    settle: Callable[[str, str | None], None],
) -> None:
    """Run ``fn`` on every item in ``workers`` spawned processes (set up by ``initializer``),
    calling ``settle(key, error)`` as cases finish.

    Raises:
        MedglipError: a worker process died (the finished cases are kept; rerun to resume).
    """
    ctx = mp.get_context("spawn")  # no fork: SimpleITK/ITK thread pools are not fork-safe
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=initializer, initargs=initargs) as pool:
        futures = [pool.submit(fn, r) for r in todo]
        try:
            for f in as_completed(futures):
                settle(*f.result())
        except BrokenProcessPool as exc:
            raise MedglipError(
                "a worker process died (out of memory or a crash in a reader); cases finished so far "
                "are kept: run the same command again to resume"
            ) from exc


def build(
    job: BuildConfig | Recipe,
    out_dir: Path | str,
    *,
    workers: int = 1,
    shard: Shard | None = None,
    on_progress: Callable[[str, str | None], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> BuildResult:
    """Build (or resume, or grow) a grounding dataset from one source or a recipe; merge once every
    case of every shard is settled.

    Args:
        job: a :class:`BuildConfig` (one source) or a :class:`Recipe` (several; a source that cannot
            be listed is reported in ``failed_sources`` and skipped).
        workers: processes working on cases in parallel (each volume is read once, by one worker).
        shard: only process this shard of the case list (sources in recipe order, cases sorted).
        on_progress: called with ``(key, error or None)`` after each case.
        on_start: called with the number of cases this run will process.

    Raises:
        DiskFull: the output folder's device filled up (one line naming the folder; re-run to resume).
        MedglipError: nothing could be listed, or ``out_dir`` holds another build.
    """
    try:
        return _run(
            plan_of(job), Path(out_dir), workers=workers, shard=shard, on_progress=on_progress, on_start=on_start
        )
    except OSError as exc:
        if _disk_full(exc):
            raise _disk_full_error(Path(out_dir)) from None
        raise


def build_complete(recipe_file: Path | str, out_dir: Path | str, *, workers: int = 1) -> Path:
    """Build the recipe in ``recipe_file`` (e.g. the sample patients shipped with medglip) into
    ``out_dir`` and return it; every case must build.

    Raises:
        MedglipError: a case or a source failed, naming the recipe and what failed.
    """
    from .recipe import load_recipe

    result = build(load_recipe(Path(recipe_file)), out_dir, workers=workers)
    if result.failed or result.failed_sources:
        raise MedglipError(f"{recipe_file}: failed to build: {result.failed or result.failed_sources}")
    return Path(out_dir)


def build_recipe(recipe: Recipe, out_dir: Path | str, **kwargs: Any) -> BuildResult:
    """:func:`build` of a recipe (the name it had when recipes had a driver of their own)."""
    return build(recipe, out_dir, **kwargs)


def _list(plan: Plan) -> tuple[list[tuple[Part, CaseRef]], Listing]:
    """Every part's cases in plan order; a part that cannot be listed stops a single-source build
    and is recorded (and skipped) in a recipe."""
    items: list[tuple[Part, CaseRef]] = []
    listing = Listing(layouts={}, keys={}, failed={})
    for part in plan.parts:
        try:
            refs, listing.layouts[part] = part_refs(part)
        except MedglipError as exc:
            if not plan.skips_unlisted:
                raise
            listing.failed[part] = str(exc)
            log.warning("%s", exc)
            continue
        items += [(part, r) for r in refs]
        listing.keys[part] = [r.key for r in refs]
    if not items:
        raise MedglipError("no source of the recipe could be listed: " + "; ".join(listing.failed.values()))
    return items, listing


def _run(
    plan: Plan,
    out: Path,
    *,
    workers: int,
    shard: Shard | None,
    on_progress: Callable[[str, str | None], None] | None,
    on_start: Callable[[int], None] | None,
) -> BuildResult:
    items, listing = _list(plan)
    plan.prepare(out, listing)
    result = BuildResult(
        out_dir=out, n_cases=len(items), failed_sources={p.name: err for p, err in listing.failed.items()}
    )
    parts = list(listing.keys)
    fps = {p: p.config.fingerprint() for p in parts}
    mine = shard.select(items) if shard else items
    todo = [(p, r) for p, r in mine if not is_done(out, r.key, fps[p])]
    todo_keys = {r.key for _, r in todo}
    result.skipped = [r.key for _, r in mine if r.key not in todo_keys]
    if on_start:
        on_start(len(todo))

    def settle(key: str, err: str | None) -> None:
        if err is None:
            result.done.append(key)
            sid = key.split("/", 1)[0]
            result.built_by_source[sid] = result.built_by_source.get(sid, 0) + 1
        else:
            result.failed[key] = err
        if on_progress:
            on_progress(key, err)

    if workers <= 1 or len(todo) <= 1:
        onto = load_ontology()
        builders = {p: CaseBuilder(config=p.config, out_dir=out, ontology=onto) for p in parts}
        for p, r in todo:
            settle(*_process(r, builders[p]))
    else:
        run_pool(
            [(parts.index(p), r) for p, r in todo],
            _process_in_worker,
            workers=workers,
            initializer=_init_worker,
            initargs=([p.config.to_json() for p in parts], str(out), 1),
            settle=settle,
        )
    settled = [r.key for p, r in items if is_done(out, r.key, fps[p]) or _failure_path(out, r.key).exists()]
    result.pending = len(items) - len(settled)
    if result.pending == 0:
        result.merged = merge(out)
    else:
        log.info(
            "%d case(s) of other shards still to build; run `medglip merge %s` once all shards finished",
            result.pending,
            out,
        )
    return result
