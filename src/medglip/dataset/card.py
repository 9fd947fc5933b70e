"""The dataset card: what a built dataset holds, as Med-GLIP-5M's tables report it.

Annotations by modality, body region, class, hierarchy level, phrase and source; per-source
cases/images/annotations with the recipe's sampling weight and licence; label names that different
sources (or cases) resolved to different phrases ("conflicts resolved"); names the ontology does not
know (kept as written); bar charts of the main tables under ``card_plots/``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from .. import __version__
from ..core.files import atomic_write_json, atomic_write_text
from .cardplot import bar_chart

_LEVELS = ("region", "organ", "substructure", "lesion", "unknown")
_BY = ("modality", "region", "class", "level", "phrase", "source")
PLOTS = {
    "modality": "Annotations by modality",
    "region": "Annotations by body region",
    "level": "Annotations by hierarchy level",
    "class": "Annotations by class",
    "source": "Annotations by source",
}


def card_stats(coco: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Counts per split and, over all splits, annotations per modality / region / class / level /
    phrase / source, images per modality and source, cases per source."""
    stats: dict[str, Any] = {"splits": {}}
    by: dict[str, Counter] = {k: Counter() for k in _BY}
    images_by_modality: Counter = Counter()
    images_by_source: Counter = Counter()
    cases_by_source: dict[str, set] = defaultdict(set)
    for split, d in coco.items():
        anns, imgs = d["annotations"], d["images"]
        source_of = {i["id"]: i["source"] for i in imgs}
        stats["splits"][split] = {
            "cases": len({(i["source"], i["case_id"]) for i in imgs}),
            "images": len(imgs),
            "negative_images": sum(1 for i in imgs if i["negative"]),
            "annotations": len(anns),
        }
        images_by_modality.update(i["modality"] for i in imgs)
        images_by_source.update(i["source"] for i in imgs)
        for i in imgs:
            cases_by_source[i["source"]].add(i["case_id"])
        for a in anns:
            for k in _BY[:-1]:
                by[k][a[k]] += 1
            by["source"][source_of[a["image_id"]]] += 1
    stats["images_by_modality"] = dict(sorted(images_by_modality.items()))
    stats["images_by_source"] = dict(sorted(images_by_source.items()))
    stats["cases_by_source"] = {s: len(c) for s, c in sorted(cases_by_source.items())}
    for k, c in by.items():
        stats[f"annotations_by_{k}"] = dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))
    stats["annotations_by_level"] = {lvl: by["level"].get(lvl, 0) for lvl in _LEVELS if by["level"].get(lvl)}
    stats["categories"] = len(next(iter(coco.values()))["categories"]) if coco else 0
    return stats


def label_resolutions(records: list[dict]) -> tuple[list[dict], list[dict]]:
    """``(conflicts, unmapped)`` from the per-case records.

    A conflict is a source label name (compared case-insensitively) that became different phrases
    in different sources or cases: ``{"name", "phrases": {phrase: [sources]}}``. Unmapped names:
    ``{"name", "sources": [...], "cases": n}``.
    """
    phrases: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    written: dict[str, str] = {}
    unmapped: dict[str, dict[str, Any]] = {}
    for r in records:
        for lab in r["labels"]:
            key = lab["source_label"].strip().lower()
            written.setdefault(key, lab["source_label"])
            phrases[key][lab["name"]].add(r["source"])
            if not lab["mapped"]:
                u = unmapped.setdefault(key, {"name": lab["source_label"], "sources": set(), "cases": 0})
                u["sources"].add(r["source"])
                u["cases"] += 1
    conflicts = [
        {"name": written[k], "phrases": {p: sorted(s) for p, s in sorted(v.items())}}
        for k, v in sorted(phrases.items())
        if len(v) > 1
    ]
    return conflicts, [{**u, "sources": sorted(u["sources"])} for _, u in sorted(unmapped.items())]


def _table(title: str, counts: dict[str, int], head: str) -> str:
    if not counts:
        return ""
    rows = "\n".join(f"| {k} | {v:,} |" for k, v in counts.items())
    return f"\n### {title}\n\n| {head} | annotations |\n|---|---:|\n{rows}\n"


def _sources_table(stats: dict[str, Any], sources: dict[str, dict[str, Any]]) -> str:
    rows = []
    for sid in sorted(set(sources) | set(stats["cases_by_source"])):
        s = sources.get(sid, {})
        rows.append(
            f"| {sid} | {s.get('dataset') or '–'} | {s.get('layout') or '–'} | "
            f"{stats['cases_by_source'].get(sid, 0):,} | {stats['images_by_source'].get(sid, 0):,} | "
            f"{stats['annotations_by_source'].get(sid, 0):,} | {s.get('weight', 1.0):g} | "
            f"{s.get('licence') or '–'} |"
        )
    failed = "".join(f"- `{sid}`: {s['error']}\n" for sid, s in sorted(sources.items()) if s.get("error"))
    failed = f"\nSources not built (listed but unreadable; fix and rerun to add them):\n\n{failed}" if failed else ""
    return (
        "\n### By source\n\n| source | data set | layout | cases | images | annotations | sampling weight | "
        "licence |\n|---|---|---|---:|---:|---:|---:|---|\n" + "\n".join(rows) + "\n" + failed
    )


def _conflicts_md(conflicts: list[dict]) -> str:
    if not conflicts:
        return ""
    rows = "\n".join(
        f"| `{c['name']}` | " + "; ".join(f"{p} ({', '.join(s)})" for p, s in c["phrases"].items()) + " |"
        for c in conflicts
    )
    return (
        "\n### Label conflicts resolved\n\nThe same source label name, resolved to different phrases by "
        "source (per-source mappings) or by the organs labelled beside it:\n\n"
        "| source label | phrase (sources) |\n|---|---|\n" + rows + "\n"
    )


def _unmapped_md(unmapped: list[dict]) -> str:
    if not unmapped:
        return ""
    rows = "\n".join(f"| `{u['name']}` | {', '.join(u['sources'])} | {u['cases']} |" for u in unmapped)
    return (
        "\n### Labels not in the ontology (kept as written)\n\n| source label | sources | cases |\n"
        "|---|---|---:|\n" + rows + "\n"
    )


def write_card(
    out: Path,
    coco: dict[str, dict[str, Any]],
    records: list[dict],
    report: dict[str, Any],
    *,
    header: str,
    sources: dict[str, dict[str, Any]] | None = None,
) -> dict:
    """Write ``card.json``, ``card.md`` and ``card_plots/*.png`` into ``out``; returns the card.

    Args:
        records: the per-case records (for label conflicts and unmapped names).
        header: the first sentence of ``card.md`` (what was built from what).
        sources: per-source facts for the source table (``dataset``, ``layout``, ``weight``, ``licence``).
    """
    stats = card_stats(coco)
    conflicts, unmapped = label_resolutions(records)
    plots = {k: f"card_plots/annotations_by_{k}.png" for k in PLOTS if stats[f"annotations_by_{k}"]}
    for k, rel in plots.items():
        bar_chart(out / rel, stats[f"annotations_by_{k}"], title=PLOTS[k])
    card = {
        "medglip_version": __version__,
        "header": header,
        "failures": report["failed"],
        "unmapped_labels": report["unmapped_labels"],
        **stats,
        "sources": sources or {},
        "label_conflicts": conflicts,
        "unmapped": unmapped,
        "plots": plots,
    }
    atomic_write_json(out / "card.json", card, indent=1)
    split_rows = "\n".join(
        f"| {s} | {v['cases']} | {v['images']:,} | {v['negative_images']:,} | {v['annotations']:,} |"
        for s, v in stats["splits"].items()
    )
    md = [
        "# Dataset card\n",
        f"{header} {stats['categories']} phrases; {report['built']} cases built, {report['failed']} failed.\n",
        "| split | cases | images | negative images | annotations |\n|---|---:|---:|---:|---:|\n" + split_rows + "\n",
        _sources_table(stats, sources or {}),
        _table("By modality", stats["annotations_by_modality"], "modality"),
        _table("By hierarchy level", stats["annotations_by_level"], "level"),
        _table("By body region", stats["annotations_by_region"], "region"),
        _table("By class", stats["annotations_by_class"], "class"),
        _table("By phrase", stats["annotations_by_phrase"], "phrase"),
        _conflicts_md(conflicts),
        _unmapped_md(unmapped),
    ]
    if plots:
        md.append("\n### Plots\n\n" + "\n".join(f"![{PLOTS[k]}]({rel})" for k, rel in plots.items()) + "\n")
    atomic_write_text(out / "card.md", "\n".join(md))
    return card
