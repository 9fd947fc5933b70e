"""Read the ontology YAML files, apply group defaults, check consistency, build an :class:`Ontology`.

The data (``ontology/data/*.yaml``) has these top-level sections; several files are merged:

- ``ct_windows`` (optional, must agree with :data:`medglip.core.intensity.CT_WINDOWS`, where the
  windows are defined): ``name: [low, high]`` in HU.
- ``regions``: ``{id, name, ct_window, synonyms, code?}``.
- ``classes``: ``{name, region, ct_window?}``.
- ``groups``: ``{class, level?, parent?, lateral?, ct_window?, kind?, terms: [...]}``; a group's keys
  are defaults for its terms. A term is ``{name, id?, level?, class?, parent?, lateral?, side?,
  mirror?, base?, synonyms?, ct_window?, kind?, generic?, code?}`` (or just its name as a string);
  ``code`` is ``{scheme, value, meaning}``, a standard code (SNOMED CT as DICOM publishes it).
  ``parent`` names another term or a region (default: the class's region).
- ``context_words``: ``kind: {words: [...], fallback: [kinds]}``.
- ``modality_names``: ``MODALITY: {name: canonical}``.
- ``sources``: ``[{match: [patterns], names: {name: canonical}}]``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ..core.intensity import CT_WINDOWS
from .mapping import SourceMapping
from .model import LEVELS, Code, OntologyClass, OntologyError, Region, Term
from .normalise import slug
from .ontology import Ontology

_GROUP_KEYS = {"class", "level", "parent", "lateral", "ct_window", "kind", "terms"}
_TERM_KEYS = {
    "name",
    "id",
    "level",
    "class",
    "parent",
    "lateral",
    "side",
    "mirror",
    "base",
    "synonyms",
    "ct_window",
    "kind",
    "generic",
    "code",
}
_CODE_KEYS = {"scheme", "value", "meaning"}


def _code(value: Any, what: str) -> Code | None:
    """A ``code: {scheme, value, meaning}`` entry (None when absent); OntologyError names ``what``."""
    if value is None:
        return None
    if not isinstance(value, Mapping) or set(value) != _CODE_KEYS:
        raise OntologyError(f"{what}: code must be {{scheme, value, meaning}}, got {value!r}")
    scheme, code, meaning = (str(value[k]).strip() for k in ("scheme", "value", "meaning"))
    if not (scheme and code and meaning) or len(code) > 64 or len(meaning) > 64:
        raise OntologyError(
            f"{what}: code needs a scheme, a value and a meaning of at most 64 characters, got {value!r}"
        )
    return Code(scheme, code, meaning)


def default_data_files() -> list[Path]:
    """The YAML files shipped with medglip, in a fixed order."""
    folder = resources.files("medglip.ontology") / "data"
    return sorted(Path(str(p)) for p in folder.iterdir() if str(p).endswith(".yaml"))


def _yaml_files(path: str | Path) -> list[Path]:
    p = Path(path)
    if p.is_dir():
        files = sorted(p.glob("*.yaml")) + sorted(p.glob("*.yml"))
        if not files:
            raise OntologyError(f"{p}: no .yaml files in this folder")
        return files
    if not p.is_file():
        raise OntologyError(f"{p}: no such ontology file or folder")
    return [p]


def read_sections(files: Iterable[Path]) -> dict[str, Any]:
    """Read and merge YAML files (lists are concatenated, mappings updated), tagging each entry's file."""
    merged: dict[str, Any] = {
        "ct_windows": {},
        "regions": [],
        "classes": [],
        "groups": [],
        "context_words": {},
        "modality_names": {},
        "sources": [],
    }
    for f in files:
        try:
            doc = yaml.safe_load(Path(f).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as e:
            raise OntologyError(f"{f}: cannot read ontology YAML: {e}") from e
        if not isinstance(doc, dict):
            raise OntologyError(f"{f}: expected a mapping of sections at the top level")
        unknown = set(doc) - set(merged)
        if unknown:
            raise OntologyError(f"{f}: unknown section(s) {sorted(unknown)}; expected {sorted(merged)}")
        for key, value in doc.items():
            if isinstance(merged[key], list):
                merged[key].extend({**v, "_file": str(f)} if isinstance(v, dict) else v for v in value or [])
            elif key == "modality_names":
                for mod, names in (value or {}).items():
                    merged[key].setdefault(str(mod).upper(), {}).update(names or {})
            else:
                merged[key].update(value or {})
    return merged


def _as_tuple(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value)
    return (str(value),)


def _expand_groups(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flatten groups into term dicts with the group defaults applied."""
    out = []
    for g in groups:
        where = g.get("_file", "?")
        bad = set(g) - _GROUP_KEYS - {"_file"}
        if bad:
            raise OntologyError(f"{where}: group of class {g.get('class')!r} has unknown key(s) {sorted(bad)}")
        defaults = {k: v for k, v in g.items() if k not in ("terms", "_file")}
        for t in g.get("terms") or []:
            t = {"name": t} if isinstance(t, str) else dict(t)
            bad = set(t) - _TERM_KEYS
            if bad:
                raise OntologyError(f"{where}: term {t.get('name')!r} has unknown key(s) {sorted(bad)}")
            if "name" not in t:
                raise OntologyError(f"{where}: a term in class {g.get('class')!r} has no name")
            out.append({**defaults, **t, "_file": where})
    return out


def build_ontology(sections: Mapping[str, Any]) -> Ontology:
    """Check the merged sections and build the :class:`Ontology` (raises :class:`OntologyError`)."""
    windows: dict[str, tuple[float, float]] = dict(CT_WINDOWS)
    for name, rng in sections["ct_windows"].items():  # the windows live in medglip.core.intensity
        try:
            same = (float(rng[0]), float(rng[1])) == windows.get(str(name))
        except (TypeError, ValueError, IndexError):
            same = False
        if not same:
            raise OntologyError(
                f"CT window {name!r} = {rng!r}: CT windows are defined once, in "
                f"medglip.core.intensity.CT_WINDOWS ({', '.join(windows)}); terms name them"
            )

    def window(name: Any, what: str) -> str:
        if str(name) not in windows:
            raise OntologyError(f"{what}: unknown CT window {name!r}; defined: {sorted(windows)}")
        return str(name)

    regions: dict[str, Region] = {}
    for r in sections["regions"]:
        rid = str(r["id"])
        if rid in regions:
            raise OntologyError(f"{r.get('_file')}: region {rid!r} defined twice")
        regions[rid] = Region(
            rid,
            str(r["name"]),
            window(r.get("ct_window", "soft_tissue"), f"region {rid}"),
            _as_tuple(r.get("synonyms")),
            _code(r.get("code"), f"{r.get('_file')}: region {rid}"),
        )
    region_by_ref = {k: rid for rid, reg in regions.items() for k in (rid, reg.name, slug(reg.name))}

    classes: dict[str, OntologyClass] = {}
    for c in sections["classes"]:
        name = str(c["name"])
        region = region_by_ref.get(str(c.get("region")))
        if region is None:
            raise OntologyError(f"{c.get('_file')}: class {name!r} has unknown region {c.get('region')!r}")
        if name in classes:
            raise OntologyError(f"{c.get('_file')}: class {name!r} defined twice")
        ct = window(c.get("ct_window", regions[region].ct_window), f"class {name}")
        classes[name] = OntologyClass(name, region, ct)

    raw_terms = _expand_groups(sections["groups"])
    id_by_ref: dict[str, str] = {}
    for reg in regions.values():
        for k in (reg.id, reg.name, slug(reg.name)):
            id_by_ref[k] = reg.id
    seen: dict[str, str] = {}
    for t in raw_terms:
        tid = str(t.get("id") or slug(str(t["name"])))
        if tid in seen or tid in regions:
            raise OntologyError(f"{t['_file']}: term id {tid!r} ({t['name']!r}) already used")
        seen[tid] = t["_file"]
        t["id"] = tid
        for k in (tid, str(t["name"]), slug(str(t["name"]))):
            id_by_ref.setdefault(k, tid)

    terms: dict[str, Term] = {}
    for reg in regions.values():
        terms[reg.id] = Term(
            reg.id,
            reg.name,
            "region",
            None,
            reg.id,
            None,
            synonyms=reg.synonyms,
            ct_window=reg.ct_window,
            code=reg.code,
        )
    for t in raw_terms:
        where = f"{t['_file']}: term {t['name']!r}"
        cls = classes.get(str(t.get("class")))
        if cls is None:
            raise OntologyError(f"{where} has unknown class {t.get('class')!r}")
        level = str(t.get("level", "organ"))
        if level not in LEVELS[1:]:
            raise OntologyError(f"{where} has level {level!r}; expected one of {LEVELS[1:]}")
        parent_ref = t.get("parent")
        parent = cls.region if parent_ref is None else id_by_ref.get(str(parent_ref))
        if parent is None:
            raise OntologyError(f"{where} has unknown parent {parent_ref!r}")
        side = t.get("side")
        if side not in (None, "left", "right"):
            raise OntologyError(f"{where} has side {side!r}; expected left or right")
        mirror = None if t.get("mirror") is None else id_by_ref.get(str(t["mirror"]))
        if t.get("mirror") is not None and mirror is None:
            raise OntologyError(f"{where} has unknown mirror {t['mirror']!r}")
        terms[t["id"]] = Term(
            id=t["id"],
            name=str(t["name"]),
            level=level,
            class_name=cls.name,
            region=cls.region,
            parent=parent,
            lateral=bool(t.get("lateral", False)) and side is None,
            side=side,
            mirror=mirror,
            synonyms=_as_tuple(t.get("synonyms")),
            base_names=_as_tuple(t.get("base")),
            ct_window=window(t.get("ct_window", cls.ct_window), where),
            kinds=_as_tuple(t.get("kind")),
            generic=bool(t.get("generic", False)),
            code=_code(t.get("code"), where),
        )
    _check_tree(terms)

    kinds: dict[str, tuple[str, ...]] = {}
    fallbacks: dict[str, tuple[str, ...]] = {}
    for kind, spec in sections["context_words"].items():
        spec = spec if isinstance(spec, dict) else {"words": spec}
        kinds[str(kind)] = _as_tuple(spec.get("words")) or (str(kind),)
        fallbacks[str(kind)] = _as_tuple(spec.get("fallback"))
    sources = [
        SourceMapping(_as_tuple(s.get("match")), {str(k): str(v) for k, v in (s.get("names") or {}).items()})
        for s in sections["sources"]
    ]
    modality_names = {m: {str(k): str(v) for k, v in names.items()} for m, names in sections["modality_names"].items()}
    return Ontology(
        windows=windows,
        regions=list(regions.values()),
        classes=list(classes.values()),
        terms=list(terms.values()),
        context_words=kinds,
        kind_fallbacks=fallbacks,
        modality_names=modality_names,
        sources=sources,
    )


def _check_tree(terms: Mapping[str, Term]) -> None:
    """Every parent exists, levels never get shallower downwards, chains end at the term's region."""
    rank = {lvl: i for i, lvl in enumerate(LEVELS)}
    for t in terms.values():
        chain = [t.id]
        cur = t
        while cur.parent is not None:
            if cur.parent not in terms:
                raise OntologyError(f"term {cur.id!r}: parent {cur.parent!r} does not exist")
            parent = terms[cur.parent]
            if rank[parent.level] > rank[cur.level]:
                raise OntologyError(f"term {cur.id!r} ({cur.level}) has a deeper parent {parent.id!r} ({parent.level})")
            if parent.id in chain:
                raise OntologyError(f"part-of cycle: {' -> '.join(chain + [parent.id])}")
            chain.append(parent.id)
            cur = parent
        if cur.level != "region" or cur.id != t.region:
            raise OntologyError(f"term {t.id!r} (region {t.region!r}) has its part-of chain ending at {cur.id!r}")


def load_sections(path: str | Path | None = None, extra: Iterable[str | Path] = ()) -> dict[str, Any]:
    files = default_data_files() if path is None else _yaml_files(path)
    for e in extra:
        files += _yaml_files(e)
    return read_sections(files)


@functools.lru_cache(maxsize=1)
def _default_ontology() -> Ontology:
    return build_ontology(load_sections())


def load_ontology(
    path: str | Path | None = None,
    *,
    extra: Iterable[str | Path] = (),
    mappings: Mapping[str, Mapping[str, str]] | str | Path | None = None,
) -> Ontology:
    """Load the label ontology.

    Args:
        path: a YAML file or a folder of YAML files replacing the shipped data; None for the data
            shipped with medglip (that ontology is built once and cached).
        extra: YAML files or folders merged on top (more terms, synonyms, source mappings).
        mappings: per-source overrides ``{source pattern: {name: canonical}}`` (``"*"`` matches every
            source), or a YAML file holding such a mapping (or a ``sources:`` section); they take
            precedence over everything in the data.

    Returns:
        The :class:`Ontology`. The default one is shared: do not rely on mutating it; use
        :meth:`Ontology.with_mappings` to get a copy with overrides.
    """
    extra = tuple(extra)
    onto = _default_ontology() if path is None and not extra else build_ontology(load_sections(path, extra))
    return onto if mappings is None else onto.with_mappings(mappings)
