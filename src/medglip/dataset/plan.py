"""What a build builds: its sources, how its output folder records them, and what its merge writes.

A single-source build (a :class:`BuildConfig`) is a one-source plan, a recipe (a :class:`Recipe`) a
plan of one part per source; both go through the one driver (:func:`medglip.dataset.runner.build`)
and the one merge (:func:`medglip.dataset.merging.merge`). They differ only in what the output folder
says about them (``build_config.json``; a recipe adds ``recipe_cases.json``), in their case keys (a
recipe's are ``<source id>/<case id>``, a single build keeps the adapter's source name) and in the
card's header — so a folder built before the two were one driver resumes and merges as it did.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from .. import __version__
from ..case import CaseRef
from ..core.files import atomic_write_json, read_json
from ..errors import MedglipError
from ..sources import detect_layout, list_cases
from .config import BuildConfig
from .recipe import Recipe, recipe_from_json

BUILD_CONFIG = "build_config.json"
CASES = "cases.json"
RECIPE_CASES = "recipe_cases.json"


@dataclass(frozen=True, kw_only=True)
class Part:
    """One source of a build.

    Args:
        id: a recipe's source id, which becomes its cases' ``source`` and the first part of their
            keys; None (a single-source build): the adapter's own source names are kept.
        config: what its cases are built with (``config.source`` is the dataset folder); its
            fingerprint marks the part's records.
        split: its split policy (:data:`medglip.dataset.recipe.SPLIT_MODES`).
    """

    id: str | None
    config: BuildConfig
    split: str = "auto"

    @property
    def name(self) -> str:
        return self.id or self.config.source


def part_refs(part: Part) -> tuple[list[CaseRef], str]:
    """The cases of one part (renamed to its id) and the layout they were read with.

    Raises:
        MedglipError: the part cannot be listed, has no labelled case, or two of its cases would
            share an output key (a recipe source's errors name the source).
    """
    cfg = part.config
    path = Path(cfg.source)
    at = f"source {part.id!r}: " if part.id else ""
    try:
        if not path.is_dir():
            raise MedglipError(f"{path}: no such dataset folder")
        layout = detect_layout(path) if cfg.layout == "auto" else cfg.layout
        refs = list_cases(path, layout, modality=cfg.modality)
    except MedglipError as exc:
        if not at:
            raise
        raise MedglipError(f"{at}{exc}") from None
    if not cfg.include_unlabeled:
        refs = [r for r in refs if r.label_paths]
    if part.id:
        refs = [dataclasses.replace(r, source=part.id) for r in refs]
    keys = [r.key for r in refs]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        raise MedglipError(f"{at}several cases of {path} map to the same output key: {dupes[:5]}")
    if not refs:
        raise MedglipError(f"{at}no labelled case found in {path} (layout {layout})")
    return refs, layout


@dataclass(frozen=True, kw_only=True)
class Listing:
    """What listing a plan's parts gave: layouts and case keys of the listed parts, errors of the others."""

    layouts: dict[Part, str]
    keys: dict[Part, list[str]]
    failed: dict[Part, str]


@dataclass(frozen=True, kw_only=True)
class MergeInput:
    """What the merge of a build folder takes: the listed parts with their case keys (in merge order)
    and the dataset-level texts (see :func:`medglip.dataset.merging.write_dataset`)."""

    parts: tuple[tuple[Part, tuple[str, ...]], ...]
    info: dict[str, Any]
    header: str
    report_extra: dict[str, Any] | None = None
    sources: dict[str, dict[str, Any]] | None = None


@dataclass(frozen=True, kw_only=True)
class SourcePlan:
    """A single-source build: one part, whose listing errors stop the build."""

    config: BuildConfig
    skips_unlisted = False  # a source that cannot be listed is the build's error

    @cached_property
    def parts(self) -> tuple[Part, ...]:
        return (Part(id=None, config=self.config),)

    def prepare(self, out: Path, listing: Listing) -> None:
        """Create ``out`` (or check it was started with these settings) and record the cases."""
        cfg_path = out / BUILD_CONFIG
        fp = self.config.fingerprint()
        if cfg_path.exists():
            old = read_json(cfg_path)
            if old.get("kind") == "recipe":
                raise MedglipError(
                    f"{out} holds a recipe build ({cfg_path}); build into it from its recipe, "
                    "or use a new output folder"
                )
            if old.get("fingerprint") != fp:
                raise MedglipError(
                    f"{out} holds a build made with other settings ({cfg_path}); "
                    "use a new output folder, or delete it to rebuild"
                )
        out.mkdir(parents=True, exist_ok=True)
        (part,) = self.parts
        atomic_write_json(
            cfg_path,
            {
                **self.config.to_json(),
                "resolved_layout": listing.layouts[part],
                "fingerprint": fp,
                "medglip_version": __version__,
            },
            indent=2,
        )
        atomic_write_json(out / CASES, sorted(listing.keys[part]))

    def merge_input(self, out: Path) -> MergeInput:
        keys = tuple(read_json(out / CASES))
        header = f"Built by medglip {__version__} from `{self.config.source}` ({self.config.plane} slices)."
        return MergeInput(parts=((self.parts[0], keys),), info={"source": self.config.source}, header=header)


@dataclass(frozen=True, kw_only=True)
class RecipePlan:
    """A recipe build: one part per source; a source that cannot be listed is reported and skipped."""

    recipe: Recipe
    skips_unlisted = True

    @cached_property
    def parts(self) -> tuple[Part, ...]:
        return tuple(
            Part(id=s.id, config=self.recipe.source_config(s), split=s.split.mode) for s in self.recipe.sources
        )

    def part(self, source_id: str) -> Part:
        src = self.recipe.source(source_id)  # raises naming the recipe and the id
        return self.parts[self.recipe.sources.index(src)]

    def prepare(self, out: Path, listing: Listing) -> None:
        """Create ``out`` (refusing a single-source build's folder) and record sources and cases."""
        cfg_path = out / BUILD_CONFIG
        if cfg_path.exists() and read_json(cfg_path).get("kind") != "recipe":
            raise MedglipError(
                f"{out} holds a single-source build ({cfg_path}); use a new output folder for the recipe"
            )
        out.mkdir(parents=True, exist_ok=True)
        sources = {}
        for src, part in zip(self.recipe.sources, self.parts, strict=True):
            cfg = part.config
            sources[src.id] = {
                **cfg.to_json(),
                "fingerprint": cfg.fingerprint(),
                "resolved_layout": listing.layouts.get(part),
                "cases": len(listing.keys.get(part, [])),
                "weight": src.weight,
                "licence": src.licence,
                "catalog": src.catalog,
                "error": listing.failed.get(part),
            }
        atomic_write_json(
            cfg_path,
            {"kind": "recipe", "recipe": self.recipe.to_json(), "sources": sources, "medglip_version": __version__},
            indent=2,
        )
        keys = {part.name: listing.keys[part] for part in self.parts if part in listing.keys}
        atomic_write_json(out / RECIPE_CASES, keys, indent=1)
        atomic_write_json(out / CASES, [k for sid in keys for k in keys[sid]])

    def merge_input(self, out: Path) -> MergeInput:
        raw = read_json(out / BUILD_CONFIG)
        keys: dict[str, list[str]] = read_json(out / RECIPE_CASES)
        recipe = self.recipe
        facts = {
            s.id: {
                "weight": s.weight,
                "licence": s.licence,
                "url": s.url,
                "dataset": s.catalog,
                "layout": (raw["sources"].get(s.id) or {}).get("resolved_layout") or s.layout,
                "split": s.split.to_json(),
                "path": s.path,
                "error": (raw["sources"].get(s.id) or {}).get("error"),
            }
            for s in recipe.sources
        }
        header = (
            f"Built by medglip {__version__} from the recipe `{recipe.name}`: {len(keys)} source(s) "
            f"({recipe.settings.plane} slices)."
        )
        return MergeInput(
            parts=tuple((p, tuple(keys[p.name])) for p in self.parts if p.name in keys),
            info={"recipe": recipe.name, "sources": facts},
            header=header,
            report_extra={"failed_sources": {sid: s["error"] for sid, s in raw["sources"].items() if s.get("error")}},
            sources=facts,
        )


Plan = SourcePlan | RecipePlan


def plan_of(job: BuildConfig | Recipe) -> Plan:
    """The plan of a single-source build (its :class:`BuildConfig`) or of a :class:`Recipe`."""
    if isinstance(job, Recipe):
        return RecipePlan(recipe=job)
    if isinstance(job, BuildConfig):
        return SourcePlan(config=job)
    raise TypeError(f"a build takes a BuildConfig or a Recipe, got {type(job).__name__}")


def plan_of_folder(out: Path | str) -> Plan:
    """The plan a build folder was built with, read back from its ``build_config.json``.

    Raises:
        MedglipError: the folder holds no build.
    """
    path = Path(out) / BUILD_CONFIG
    if not path.exists():
        raise MedglipError(f"{out}: not a medglip build folder (no {BUILD_CONFIG})")
    raw = read_json(path)
    if raw.get("kind") == "recipe":
        return RecipePlan(recipe=recipe_from_json(raw["recipe"]))
    return SourcePlan(config=BuildConfig.from_json(raw))


def source_refs(recipe: Recipe, source_id: str) -> tuple[list[CaseRef], str]:
    """The cases of one recipe source, renamed to the source id, and the layout they were read with.

    Raises:
        MedglipError: the source cannot be listed (names the source and why).
    """
    return part_refs(RecipePlan(recipe=recipe).part(source_id))


def job_for(source_or_recipe: Path | str, config: BuildConfig) -> BuildConfig | Recipe:
    """What ``medglip build SOURCE_OR_RECIPE OUT`` builds: a recipe YAML file as the recipe (its own
    settings; ``config`` is not used), a dataset folder with ``config`` (whose ``source`` it becomes).

    Raises:
        MedglipError: the path does not exist, or is a file that is not a readable recipe.
    """
    path = Path(source_or_recipe)
    if path.is_file():
        from .recipe import load_recipe

        return load_recipe(path)
    if not path.is_dir():
        raise MedglipError(f"{path}: no such dataset folder or recipe file")
    return dataclasses.replace(config, source=str(source_or_recipe))
