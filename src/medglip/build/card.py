"""The dataset card: what a built dataset holds, per modality, region, class and hierarchy level."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from .. import __version__
from .config import BuildConfig
from ..core.files import atomic_write_json, atomic_write_text

_LEVELS = ("region", "organ", "substructure", "lesion", "unknown")


def card_stats(coco: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Counts per split and, over all splits, per modality / region / class / level / phrase / source."""
    stats: dict[str, Any] = {"splits": {}}
    by: dict[str, Counter] = {k: Counter() for k in ("modality", "region", "class", "level", "phrase", "source")}
    images_by_modality: Counter = Counter()
    for split, d in coco.items():
        anns, imgs = d["annotations"], d["images"]
        stats["splits"][split] = {
            "cases": len({(i["source"], i["case_id"]) for i in imgs}),
            "images": len(imgs),
            "negative_images": sum(1 for i in imgs if i["negative"]),
            "annotations": len(anns),
        }
        images_by_modality.update(i["modality"] for i in imgs)
        for a in anns:
            for k in ("modality", "region", "class", "level", "phrase"):
                by[k][a[k]] += 1
        by["source"].update(i["source"] for i in imgs)
    stats["images_by_modality"] = dict(sorted(images_by_modality.items()))
    for k, c in by.items():
        stats[f"annotations_by_{k}"] = dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))
    stats["annotations_by_level"] = {lvl: by["level"].get(lvl, 0) for lvl in _LEVELS if by["level"].get(lvl)}
    stats["categories"] = len(next(iter(coco.values()))["categories"]) if coco else 0
    return stats


def _table(title: str, counts: dict[str, int], head: str) -> str:
    if not counts:
        return ""
    rows = "\n".join(f"| {k} | {v:,} |" for k, v in counts.items())
    return f"\n### {title}\n\n| {head} | annotations |\n|---|---:|\n{rows}\n"


def write_card(out: Path, coco: dict[str, dict[str, Any]], config: BuildConfig, report: dict[str, Any]) -> dict:
    """Write ``card.json`` and ``card.md`` into ``out``; returns the card."""
    stats = card_stats(coco)
    card = {"medglip_version": __version__, "source": config.source, "plane": config.plane,
            "failures": report["failed"], "unmapped_labels": report["unmapped_labels"], **stats}
    atomic_write_json(out / "card.json", card, indent=1)
    split_rows = "\n".join(
        f"| {s} | {v['cases']} | {v['images']:,} | {v['negative_images']:,} | {v['annotations']:,} |"
        for s, v in stats["splits"].items())
    md = [
        "# Dataset card\n",
        f"Built by medglip {__version__} from `{config.source}` ({config.plane} slices). "
        f"{stats['categories']} phrases; {report['built']} cases built, {report['failed']} failed.\n",
        "| split | cases | images | negative images | annotations |\n|---|---:|---:|---:|---:|\n" + split_rows + "\n",
        _table("By modality", stats["annotations_by_modality"], "modality"),
        _table("By hierarchy level", stats["annotations_by_level"], "level"),
        _table("By body region", stats["annotations_by_region"], "region"),
        _table("By class", stats["annotations_by_class"], "class"),
        _table("By phrase", stats["annotations_by_phrase"], "phrase"),
    ]
    if report["unmapped_labels"]:
        md.append("\n### Labels not in the ontology (kept as written)\n\n" + "\n".join(
            f"- `{k}` ({v} source label(s))" for k, v in report["unmapped_labels"].items()) + "\n")
    atomic_write_text(out / "card.md", "\n".join(md))
    return card
