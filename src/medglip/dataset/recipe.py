"""Build recipes: several sources built into one grounding dataset, described in YAML.

A recipe (``recipe.yaml``)::

    recipe: 1
    name: medglip-5m-repro
    settings: {plane: axial, negative_ratio: 0.2, split_ratios: [0.8, 0.1, 0.1], seed: 0}
    sources:
      - id: amos22                 # the source id: image records' "source", output folders, case keys
        path: /data/amos22         # relative paths are relative to the recipe file's folder
        catalog: amos22            # optional (default: the id, when it is a catalogue id): fills
                                   # layout, licence and url from medglip's dataset catalogue
        layout: auto               # an adapter name (medglip.sources.LAYOUTS) or auto
        modality: null             # force a modality on every case of this source
        label_map: {arota: aorta}  # this source's label name -> phrase, applied before the ontology
        split: auto                # auto | declared | ratios | [0.7, 0.15, 0.15] | train | val | test
        weight: 1.0                # sampling weight, recorded for the trainer
        licence: CC BY 4.0
        test_cases: []             # case ids forced into the test split

``settings`` takes the :class:`~medglip.dataset.BuildConfig` fields shared by all sources (plane,
ct_windows and context_slices (the input pipeline's: one for the whole dataset), display_window,
percentiles, channels, min_area_mm2, min_pixels, negative_ratio, split_ratios, seed, include_unlabeled).
Split policies: ``auto`` keeps a split the source declares (when it declares at least two) and cuts
the rest by ratios, by patient; ``declared`` keeps every declared split, even a single one; ``ratios``
(or a ``[train, val, test]`` list) ignores declared splits; ``train`` / ``val`` / ``test`` put the whole
source in one split (an external test set).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..case import safe_name
from ..core.intensity import parse_window
from ..errors import CatalogError, MedglipError, RecipeError
from ..modality import UnknownModalityError, normalise_modality
from .config import BuildConfig, mapping_to_tuple

RECIPE_VERSION = 1
SPLIT_MODES = ("auto", "declared", "ratios", "train", "val", "test")
_SOURCE_KEYS = {
    "id",
    "path",
    "catalog",
    "layout",
    "modality",
    "label_map",
    "split",
    "weight",
    "licence",
    "url",
    "test_cases",
}
_SHARED = (
    "plane",
    "ct_windows",
    "context_slices",
    "display_window",
    "percentiles",
    "channels",
    "min_area_mm2",
    "min_pixels",
    "negative_ratio",
    "split_ratios",
    "seed",
    "include_unlabeled",
    "input_version",
)


@dataclass(frozen=True, kw_only=True)
class SplitPolicy:
    """How one source's cases are split (see the module docstring).

    Args:
        mode: one of :data:`SPLIT_MODES`.
        ratios: train/val/test fractions for ``auto``/``declared``/``ratios``; None = the recipe's.
    """

    mode: str = "auto"
    ratios: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        if self.mode not in SPLIT_MODES:
            raise ValueError(
                f"split must be one of {', '.join(SPLIT_MODES)} or [train, val, test] fractions, got {self.mode!r}"
            )

    @staticmethod
    def parse(value: Any) -> SplitPolicy:
        """``"auto"``, ``"test"``, ``[0.7, 0.15, 0.15]`` or ``{mode: ratios, ratios: [...]}``."""
        if value is None:
            return SplitPolicy()
        if isinstance(value, str):
            return SplitPolicy(mode=value)
        if isinstance(value, (list, tuple)):
            return SplitPolicy(mode="ratios", ratios=_ratios(value))
        if isinstance(value, dict):
            ratios = value.get("ratios")
            return SplitPolicy(mode=str(value.get("mode", "auto")), ratios=_ratios(ratios) if ratios else None)
        raise ValueError(f"split must be a mode name or [train, val, test] fractions, got {value!r}")

    def to_json(self) -> Any:
        if self.ratios is None:
            return self.mode
        return list(self.ratios) if self.mode == "ratios" else {"mode": self.mode, "ratios": list(self.ratios)}


def _ratios(value: Any) -> tuple[float, float, float]:
    try:
        r = tuple(float(x) for x in value)
    except (TypeError, ValueError):
        raise ValueError(f"split fractions must be three numbers, got {value!r}") from None
    if len(r) != 3 or any(x < 0 for x in r) or sum(r) <= 0:
        raise ValueError(f"split fractions must be three non-negative numbers, got {value!r}")
    return r


@dataclass(frozen=True, kw_only=True)
class RecipeSource:
    """One source of a recipe (fields as in the module docstring; ``path`` is resolved)."""

    id: str
    path: str
    layout: str = "auto"
    catalog: str | None = None
    modality: str | None = None
    label_map: tuple[tuple[str, str], ...] = ()
    split: SplitPolicy = field(default_factory=SplitPolicy)
    weight: float = 1.0
    licence: str | None = None
    url: str | None = None
    test_cases: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.id or safe_name(self.id) != self.id:
            raise ValueError(f"source id {self.id!r} must be non-empty and use only letters, digits and -_.")
        if not self.weight > 0:
            raise ValueError(f"weight must be > 0, got {self.weight}")

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["label_map"] = dict(self.label_map)
        d["split"] = self.split.to_json()
        d["test_cases"] = list(self.test_cases)
        return d


@dataclass(frozen=True, kw_only=True)
class Recipe:
    """A named list of sources with the build settings they share.

    Args:
        name: the dataset's name (card title).
        sources: the sources, in build order; ids unique.
        settings: a :class:`BuildConfig` carrying the shared settings (its ``source`` is the recipe).
    """

    name: str
    sources: tuple[RecipeSource, ...]
    settings: BuildConfig

    def __post_init__(self) -> None:
        ids = [s.id for s in self.sources]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"source id(s) used twice: {dup}")
        if not self.sources:
            raise ValueError("a recipe needs at least one source")

    def source(self, source_id: str) -> RecipeSource:
        for s in self.sources:
            if s.id == source_id:
                return s
        raise RecipeError(f"recipe {self.name!r} has no source {source_id!r}")

    def source_config(self, src: RecipeSource) -> BuildConfig:
        """The :class:`BuildConfig` one source is built with (its fingerprint marks its records).

        Labels resolve with the source id as the ontology's source name. A source whose id is not
        its catalogue id also gets the catalogue data set's per-source meanings ("arota" in AMOS)
        as label mappings, under the recipe's own ``label_map``.
        """
        mapping = dict(catalogue_mapping(src.catalog) if src.catalog and src.catalog != src.id else {})
        mapping.update(src.label_map)
        return dataclasses.replace(
            self.settings,
            source=src.path,
            layout=src.layout,
            modality=src.modality,
            label_mapping=mapping_to_tuple({"*": mapping}) if mapping else (),
            split_ratios=src.split.ratios or self.settings.split_ratios,
            test_cases=src.test_cases,
        )

    def to_json(self) -> dict[str, Any]:
        shared = {k: v for k, v in self.settings.to_json().items() if k in _SHARED}
        return {
            "recipe": RECIPE_VERSION,
            "name": self.name,
            "settings": shared,
            "sources": [s.to_json() for s in self.sources],
        }

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_json(), sort_keys=False, allow_unicode=True, width=110, default_flow_style=None)


def catalogue_mapping(catalog_id: str) -> dict[str, str]:
    """Label name → phrase for the catalogue data set's names that have a per-source meaning."""
    from ..catalog import get_entry
    from ..ontology import load_ontology

    onto = load_ontology()
    out = {}
    for name in get_entry(catalog_id).label_names:
        r = onto.resolve(name, source=catalog_id)
        if r.via == "source":
            out[name] = r.phrase
    return out


def _source(raw: Any, i: int, where: str, base_dir: Path) -> RecipeSource:
    from ..catalog import get_entry

    if not isinstance(raw, dict):
        raise RecipeError(f"{where}: source #{i} must be a mapping, got {raw!r}")
    sid = str(raw.get("id") or "")
    at = f"{where} source {sid or '#' + str(i)!r}"
    unknown = sorted(set(raw) - _SOURCE_KEYS)
    if unknown:
        raise RecipeError(f"{at}: unknown field(s) {unknown}; known: {sorted(_SOURCE_KEYS)}")
    if not raw.get("path"):
        raise RecipeError(f"{at}: 'path' (the dataset folder) is required")
    entry = None
    if raw.get("catalog") is not False:  # `catalog: false` opts out of the catalogue defaults
        try:
            entry = get_entry(str(raw.get("catalog") or sid))
        except CatalogError as exc:
            if raw.get("catalog"):
                raise RecipeError(f"{at}: {exc}") from None
    label_map = raw.get("label_map") or {}
    if not isinstance(label_map, dict):
        raise RecipeError(f"{at}: 'label_map' must map source label names to phrases, got {label_map!r}")
    path = Path(str(raw["path"])).expanduser()
    try:
        return RecipeSource(
            id=sid,
            path=str(path.resolve() if path.is_absolute() else (base_dir / path).resolve()),
            layout=str(raw.get("layout") or (entry.layout if entry else "auto")),
            catalog=entry.id if entry else None,
            modality=normalise_modality(raw["modality"]) if raw.get("modality") else None,
            label_map=tuple(sorted((str(k), str(v)) for k, v in label_map.items())),
            split=SplitPolicy.parse(raw.get("split")),
            weight=float(raw.get("weight", 1.0)),
            licence=str(raw["licence"]) if raw.get("licence") else (entry.licence if entry else None),
            url=str(raw["url"]) if raw.get("url") else (entry.url if entry else None),
            test_cases=tuple(str(c) for c in raw.get("test_cases") or ()),
        )
    except (ValueError, TypeError, UnknownModalityError) as exc:
        raise RecipeError(f"{at}: {exc}") from None


def parse_recipe(data: Any, *, where: str = "recipe", base_dir: str | Path = ".") -> Recipe:
    """Check a recipe mapping and build the :class:`Recipe` (errors name ``where``, the source, the field)."""
    if not isinstance(data, dict) or not isinstance(data.get("sources"), list):
        raise RecipeError(f"{where}: expected a mapping with a 'sources' list")
    if int(data.get("recipe", RECIPE_VERSION)) != RECIPE_VERSION:
        raise RecipeError(f"{where}: recipe format {data.get('recipe')!r} is not supported (expected {RECIPE_VERSION})")
    settings = dict(data.get("settings") or {})
    if "split" in settings:
        settings["split_ratios"] = settings.pop("split")
    bad = sorted(set(settings) - set(_SHARED))
    if bad:
        raise RecipeError(f"{where}: unknown setting(s) {bad}; known: {list(_SHARED)}")
    try:
        for k in ("percentiles", "split_ratios"):
            if k in settings:
                settings[k] = tuple(settings[k])
        if "ct_windows" in settings:  # names ("lung") or [low, high] pairs
            settings["ct_windows"] = tuple(
                parse_window(w if isinstance(w, str) else tuple(w)) for w in settings["ct_windows"]
            )
        base = BuildConfig(source=str(data.get("name") or where), **settings)
    except (ValueError, TypeError, MedglipError) as exc:
        raise RecipeError(f"{where}: settings: {exc}") from None
    sources = tuple(_source(s, i, where, Path(base_dir)) for i, s in enumerate(data["sources"]))
    try:
        return Recipe(name=str(data.get("name") or Path(where).stem), sources=sources, settings=base)
    except ValueError as exc:
        raise RecipeError(f"{where}: {exc}") from None


def load_recipe(path: str | Path) -> Recipe:
    """Read a recipe YAML file (relative source paths are taken from the file's folder)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise RecipeError(f"{path}: cannot read the recipe ({exc})") from None
    return parse_recipe(data, where=str(path), base_dir=path.resolve().parent)


def recipe_from_json(data: dict[str, Any]) -> Recipe:
    """Inverse of :meth:`Recipe.to_json` (paths are already absolute)."""
    return parse_recipe(data, where=str(data.get("name", "recipe")), base_dir="/")


def starter_recipe(hits: list[Any], *, name: str = "medglip-recipe") -> Recipe:
    """A recipe with one source per :class:`medglip.catalog.ScanHit` (ids from the catalogue, else
    from the folder name; made unique with a numeric suffix)."""
    sources, seen = [], set()
    for hit in hits:
        base = hit.entry.id if hit.entry else safe_name(hit.path.name).lower()
        sid, n = base, 2
        while sid in seen:
            sid, n = f"{base}_{n}", n + 1
        seen.add(sid)
        sources.append(
            RecipeSource(
                id=sid,
                path=str(Path(hit.path).resolve()),
                layout=hit.layout,
                catalog=hit.entry.id if hit.entry else None,
                licence=hit.entry.licence if hit.entry else None,
                url=hit.entry.url if hit.entry else None,
            )
        )
    if not sources:
        raise RecipeError("no data set found: nothing to put in a recipe")
    return Recipe(name=name, sources=tuple(sources), settings=BuildConfig(source=name))
