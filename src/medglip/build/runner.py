"""Run a build: list cases, process them in parallel (optionally one shard of them), resume after a crash.

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
from typing import Any

from .. import __version__
from ..case import CaseRef
from ..errors import MedglipError
from ..ontology import load_ontology
from ..sources import list_cases, load_case
from .config import BuildConfig
from ..core.files import atomic_write_json, read_json
from .merge import MergeResult, merge_source
from .process import CaseBuilder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0-based, like SLURM array ids and torchrun ranks)."""

    index: int
    count: int

    @staticmethod
    def parse(spec: str) -> "Shard":
        try:
            k, n = (int(x) for x in spec.split("/"))
        except ValueError:
            raise MedglipError(f"--shard must look like K/N (e.g. 0/4), got {spec!r}") from None
        if n < 1 or not 0 <= k < n:
            raise MedglipError(f"--shard {spec}: need 0 <= K < N (K is 0-based)")
        return Shard(k, n)

    def select(self, refs: list[CaseRef]) -> list[CaseRef]:
        return [r for i, r in enumerate(refs) if i % self.count == self.index]


@dataclass
class BuildResult:
    out_dir: Path
    n_cases: int
    done: list[str] = field(default_factory=list)      # processed in this run
    skipped: list[str] = field(default_factory=list)   # already done by an earlier run
    failed: dict[str, str] = field(default_factory=dict)
    pending: int = 0                                   # cases of other shards still to do
    merged: MergeResult | None = None


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
    return DiskFull(f"no space left on the device holding {out}: the build stopped; free some space and run the "
                    "same command again to resume (finished cases are kept)")


_WORKER_BUILDER: CaseBuilder | None = None


def _init_worker(config_json: dict, out_dir: str, threads: int) -> None:
    global _WORKER_BUILDER
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    _WORKER_BUILDER = CaseBuilder(config=BuildConfig.from_json(config_json), out_dir=Path(out_dir), ontology=load_ontology())


def _process(ref: CaseRef, builder: CaseBuilder | None = None) -> tuple[str, str | None]:
    """Build one case and write its record or failure file. Returns ``(key, error or None)``."""
    builder = builder or _WORKER_BUILDER
    assert builder is not None
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
            atomic_write_json(_failure_path(out, ref.key), {
                "key": ref.key, "case_id": ref.case_id, "source": ref.source, "files": files,
                "error": type(exc).__name__, "reason": reason,
                "traceback": traceback.format_exc(limit=6),
            }, indent=1)
        except OSError as write_error:
            if _disk_full(write_error):
                raise _disk_full_error(out) from None
            raise
        log.warning("case %s failed: %s", ref.key, reason)
        return ref.key, reason


def run_pool(todo: list[CaseRef], fn: Callable[[CaseRef], tuple[str, str | None]], *, workers: int,
             initializer: Callable[..., None], initargs: tuple, settle: Callable[[str, str | None], None]) -> None:
    """Run ``fn`` on every ref in ``workers`` spawned processes (set up by ``initializer``),
    calling ``settle(key, error)`` as cases finish.

    Raises:
        MedglipError: a worker process died (the finished cases are kept; rerun to resume).
    """
    ctx = mp.get_context("spawn")  # no fork: SimpleITK/ITK thread pools are not fork-safe
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=initializer,
                             initargs=initargs) as pool:
        futures = [pool.submit(fn, r) for r in todo]
        try:
            for f in as_completed(futures):
                settle(*f.result())
        except BrokenProcessPool as exc:
            raise MedglipError(
                "a worker process died (out of memory or a crash in a reader); cases finished so far "
                "are kept: run the same command again to resume"
            ) from exc


def prepare_out(config: BuildConfig, out: Path, *, layout: str) -> None:
    """Create ``out`` or check that it was started with the same configuration."""
    cfg_path = out / "build_config.json"
    if cfg_path.exists():
        old = read_json(cfg_path)
        if old.get("kind") == "recipe":
            raise MedglipError(f"{out} holds a recipe build ({cfg_path}); build into it with --recipe, "
                               "or use a new output folder")
        if old.get("fingerprint") != config.fingerprint():
            raise MedglipError(
                f"{out} holds a build made with other settings ({cfg_path}); "
                "use a new output folder, or delete it to rebuild"
            )
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(cfg_path, {**config.to_json(), "resolved_layout": layout, "fingerprint": config.fingerprint(),
                                 "medglip_version": __version__}, indent=2)


def build(config: BuildConfig, out_dir: Path | str, **kwargs: Any) -> BuildResult:
    """Build (or resume building) a grounding dataset; see :func:`run_build` for the arguments.

    Raises:
        DiskFull: the output folder's device filled up (one line naming the folder; re-run to resume).
    """
    try:
        return run_build(config, out_dir, **kwargs)
    except OSError as exc:
        if _disk_full(exc):
            raise _disk_full_error(Path(out_dir)) from None
        raise


def run_build(
    config: BuildConfig,
    out_dir: Path | str,
    *,
    workers: int = 1,
    shard: Shard | None = None,
    on_progress: Callable[[str, str | None], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> BuildResult:
    """Build (or resume building) a grounding dataset. See :class:`BuildConfig` for the settings.

    Args:
        workers: processes working on cases in parallel (each volume is read once, by one worker).
        shard: only process this shard of the sorted case list (merge happens once all are done).
        on_progress: called with ``(key, error or None)`` after each case.
        on_start: called with the number of cases this run will process.
    """
    out = Path(out_dir)
    from ..sources import detect_layout

    layout = detect_layout(Path(config.source)) if config.layout == "auto" else config.layout
    refs = list_cases(Path(config.source), layout, modality=config.modality)
    if not config.include_unlabeled:
        refs = [r for r in refs if r.label_paths]
    if not refs:
        raise MedglipError(f"{config.source}: no labelled case found (layout {layout})")
    keys = [r.key for r in refs]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        raise MedglipError(f"{config.source}: several cases map to the same output key: {dupes[:5]}")
    prepare_out(config, out, layout=layout)
    atomic_write_json(out / "cases.json", sorted(keys))
    mine = shard.select(refs) if shard else refs
    fp = config.fingerprint()
    result = BuildResult(out_dir=out, n_cases=len(refs))
    todo = [r for r in mine if not is_done(out, r.key, fp)]
    todo_keys = {r.key for r in todo}
    result.skipped = [r.key for r in mine if r.key not in todo_keys]
    if on_start:
        on_start(len(todo))

    def settle(key: str, err: str | None) -> None:
        if err is None:
            result.done.append(key)
        else:
            result.failed[key] = err
        if on_progress:
            on_progress(key, err)

    if workers <= 1 or len(todo) <= 1:
        builder = CaseBuilder(config=config, out_dir=out, ontology=load_ontology())
        for r in todo:
            settle(*_process(r, builder))
    else:
        run_pool(todo, _process, workers=workers, initializer=_init_worker,
                 initargs=(config.to_json(), str(out), 1), settle=settle)
    all_keys = read_json(out / "cases.json")
    settled = [k for k in all_keys if is_done(out, k, fp) or _failure_path(out, k).exists()]
    result.pending = len(all_keys) - len(settled)
    if result.pending == 0:
        result.merged = merge_source(out)
    else:
        log.info("%d case(s) of other shards still to build; run `medglip merge %s` once all shards finished",
                 result.pending, out)
    return result
