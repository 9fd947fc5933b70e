"""Build a recipe: every source's cases through the same per-case machinery as a single build.

- Case keys are ``<source id>/<case id>``, so ids stay unique across sources; each source is built
  with its own :class:`BuildConfig` (``Recipe.source_config``), whose fingerprint marks its records.
- Resume and growth: a case is done when its record carries its source's fingerprint, so adding a
  source (or changing one source's settings) builds only that source's cases, then re-merges.
- ``--shard K/N`` takes every N-th case of the whole recipe (sources in recipe order, cases sorted);
  the merge happens once every case of every source is settled.
- Faults: a source that cannot be listed (missing folder, unknown layout) is reported in
  ``build_report.json`` (``failed_sources``) and skipped; a bad case fails alone, as in single builds.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..case import CaseRef
from ..errors import MedglipError
from ..ontology import load_ontology
from ..sources import detect_layout, list_cases
from .config import BuildConfig
from ..core.files import atomic_write_json, read_json
from .merge import MergeResult, assign_splits, collect, merge_source, write_dataset
from .process import CaseBuilder
from .recipe import Recipe, recipe_from_json
from .runner import Shard, _process, is_done, run_pool

log = logging.getLogger(__name__)

RECIPE_CASES = "recipe_cases.json"


@dataclass
class RecipeBuildResult:
    """What one run of :func:`build_recipe` did (``done``/``skipped``/``failed`` are case keys)."""

    out_dir: Path
    n_cases: int
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    failed_sources: dict[str, str] = field(default_factory=dict)
    built_by_source: dict[str, int] = field(default_factory=dict)
    pending: int = 0
    merged: MergeResult | None = None


def source_refs(recipe: Recipe, source_id: str) -> tuple[list[CaseRef], str]:
    """The cases of one recipe source, renamed to the source id, and the layout they were read with.

    Raises:
        MedglipError: the source cannot be listed (names the source and why).
    """
    src = recipe.source(source_id)
    cfg = recipe.source_config(src)
    path = Path(src.path)
    try:
        if not path.is_dir():
            raise MedglipError(f"{path}: no such dataset folder")
        layout = detect_layout(path) if src.layout == "auto" else src.layout
        refs = list_cases(path, layout, modality=src.modality)
    except MedglipError as exc:
        raise MedglipError(f"source {src.id!r}: {exc}") from None
    if not cfg.include_unlabeled:
        refs = [r for r in refs if r.label_paths]
    refs = [dataclasses.replace(r, source=src.id) for r in refs]
    keys = [r.key for r in refs]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        raise MedglipError(f"source {src.id!r}: several cases map to the same output key: {dupes[:5]}")
    if not refs:
        raise MedglipError(f"source {src.id!r}: no labelled case found in {path} (layout {layout})")
    return refs, layout


def _prepare(recipe: Recipe, out: Path, layouts: dict[str, str], failed: dict[str, str],
             keys: dict[str, list[str]]) -> None:
    cfg_path = out / "build_config.json"
    if cfg_path.exists() and read_json(cfg_path).get("kind") != "recipe":
        raise MedglipError(f"{out} holds a single-source build ({cfg_path}); use a new output folder for the recipe")
    out.mkdir(parents=True, exist_ok=True)
    sources = {}
    for src in recipe.sources:
        cfg = recipe.source_config(src)
        sources[src.id] = {**cfg.to_json(), "fingerprint": cfg.fingerprint(), "resolved_layout": layouts.get(src.id),
                           "cases": len(keys.get(src.id, [])), "weight": src.weight, "licence": src.licence,
                           "catalog": src.catalog, "error": failed.get(src.id)}
    atomic_write_json(cfg_path, {"kind": "recipe", "recipe": recipe.to_json(), "sources": sources,
                                 "medglip_version": __version__}, indent=2)
    atomic_write_json(out / RECIPE_CASES, keys, indent=1)
    atomic_write_json(out / "cases.json", [k for sid in keys for k in keys[sid]])


_WORKER_BUILDERS: dict[str, CaseBuilder] = {}


def _init_recipe_worker(configs: dict[str, dict], out_dir: str, threads: int) -> None:
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    onto = load_ontology()
    _WORKER_BUILDERS.update({sid: CaseBuilder(config=BuildConfig.from_json(c), out_dir=Path(out_dir), ontology=onto)
                             for sid, c in configs.items()})


def _process_recipe_case(ref: CaseRef) -> tuple[str, str | None]:
    return _process(ref, _WORKER_BUILDERS[ref.source])


def build_recipe(recipe: Recipe, out_dir: Path | str, *, workers: int = 1, shard: Shard | None = None,
                 on_progress: Callable[[str, str | None], None] | None = None,
                 on_start: Callable[[int], None] | None = None) -> RecipeBuildResult:
    """Build (or resume, or grow) the dataset of a recipe; merge once every case is settled.

    Args:
        workers: processes working on cases in parallel (across sources).
        shard: only this shard of the recipe's cases.
        on_progress: called with ``(key, error or None)`` after each case.
        on_start: called with the number of cases this run will process.
    """
    out = Path(out_dir)
    refs: list[CaseRef] = []
    keys: dict[str, list[str]] = {}
    layouts: dict[str, str] = {}
    result = RecipeBuildResult(out_dir=out, n_cases=0)
    for src in recipe.sources:
        try:
            src_refs, layouts[src.id] = source_refs(recipe, src.id)
        except MedglipError as exc:
            result.failed_sources[src.id] = str(exc)
            log.warning("%s", exc)
            continue
        refs += src_refs
        keys[src.id] = [r.key for r in src_refs]
    if not refs:
        raise MedglipError("no source of the recipe could be listed: " + "; ".join(result.failed_sources.values()))
    _prepare(recipe, out, layouts, result.failed_sources, keys)
    result.n_cases = len(refs)
    configs = {s.id: recipe.source_config(s) for s in recipe.sources if s.id in keys}
    fps = {sid: c.fingerprint() for sid, c in configs.items()}
    mine = shard.select(refs) if shard else refs
    todo = [r for r in mine if not is_done(out, r.key, fps[r.source])]
    todo_keys = {r.key for r in todo}
    result.skipped = [r.key for r in mine if r.key not in todo_keys]
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
        builders = {sid: CaseBuilder(config=c, out_dir=out, ontology=onto) for sid, c in configs.items()}
        for r in todo:
            settle(*_process(r, builders[r.source]))
    else:
        run_pool(todo, _process_recipe_case, workers=workers, initializer=_init_recipe_worker,
                 initargs=({sid: c.to_json() for sid, c in configs.items()}, str(out), 1), settle=settle)
    settled = [r.key for r in refs if is_done(out, r.key, fps[r.source]) or (out / "failures" / f"{r.key}.json").exists()]
    result.pending = len(refs) - len(settled)
    if result.pending == 0:
        result.merged = merge_recipe(out)
    else:
        log.info("%d case(s) of other shards still to build; run `medglip merge %s` once all shards finished",
                 result.pending, out)
    return result


def merge(out_dir: Path | str) -> MergeResult:
    """Merge the records of a (sharded) build into annotations, card and report: a recipe build
    (``build_config.json`` of kind ``recipe``) by :func:`merge_recipe`, a one-source build by
    :func:`medglip.build.merge.merge_source`."""
    if read_json(Path(out_dir) / "build_config.json").get("kind") == "recipe":
        return merge_recipe(out_dir)
    return merge_source(out_dir)


def merge_recipe(out_dir: Path | str) -> MergeResult:
    """Merge a recipe build: each source split by its policy, one COCO/ODVG dataset, one card."""
    out = Path(out_dir)
    raw = read_json(out / "build_config.json")
    recipe = recipe_from_json(raw["recipe"])
    keys: dict[str, list[str]] = read_json(out / RECIPE_CASES)
    records: list[dict] = []
    failures: list[dict] = []
    split_of: dict[str, str] = {}
    for src in recipe.sources:
        if src.id not in keys:
            continue
        cfg = recipe.source_config(src)
        recs, fails = collect(out, keys[src.id], dict.fromkeys(keys[src.id], cfg.fingerprint()))
        split_of.update(assign_splits(recs, cfg, mode=src.split.mode))
        records += recs
        failures += fails
    failed_sources = {sid: s["error"] for sid, s in raw["sources"].items() if s.get("error")}
    info_sources = _sources_facts(recipe, raw["sources"])
    header = (f"Built by medglip {__version__} from the recipe `{recipe.name}`: {len(keys)} source(s) "
              f"({recipe.settings.plane} slices).")
    return write_dataset(out, records, failures, split_of, n_cases=sum(len(v) for v in keys.values()),
                         info={"recipe": recipe.name, "sources": info_sources}, header=header,
                         report_extra={"failed_sources": failed_sources}, sources=info_sources)


def _sources_facts(recipe: Recipe, built: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per source: sampling weight, licence, url, catalogue id, layout, split policy (for trainer and card)."""
    return {s.id: {"weight": s.weight, "licence": s.licence, "url": s.url, "dataset": s.catalog,
                   "layout": (built.get(s.id) or {}).get("resolved_layout") or s.layout, "split": s.split.to_json(),
                   "path": s.path, "error": (built.get(s.id) or {}).get("error")} for s in recipe.sources}
