"""Merge per-case records into the final dataset: splits by case, COCO + ODVG files, card, report."""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.files import atomic_write_json, atomic_write_text, read_json
from ..errors import MedglipError
from .card import write_card
from .config import BuildConfig
from .plan import plan_of_folder

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
_SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "tr": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
    "ts": "test",
}


@dataclass
class MergeResult:
    images: dict[str, int]
    annotations: dict[str, int]
    cases: dict[str, int]
    failures: int
    unmapped: list[str]


def assign_splits(records: list[dict], config: BuildConfig, *, mode: str = "auto") -> dict[str, str]:
    """Case key → split. Cases never straddle splits, nor do a patient's cases.

    ``test_cases`` go to test. ``mode`` (a recipe source's split policy):

    - ``auto``: a split the source declares is kept (ISIC's Training/Validation/Test folders,
      TotalSegmentator's meta.csv, a manifest's held-out cases), except when every case declares the
      same one — a source whose labelled cases are all "train" (nnU-Net's imagesTr) is split by
      ``split_ratios``;
    - ``declared``: every declared split is kept, even a single one;
    - ``ratios``: declared splits are ignored;
    - ``train`` / ``val`` / ``test``: every case goes there.

    The remaining cases are grouped by patient (``record["patient"]``, else the case itself),
    the groups shuffled with the seed and cut by ``split_ratios``.
    """
    forced = set(config.test_cases)
    if mode in SPLITS:
        return {r["key"]: ("test" if _forced(r, forced) else mode) for r in records}
    declared = {r["key"]: _SPLIT_ALIASES.get(str(r.get("split") or "").lower()) for r in records}
    if mode == "ratios" or (mode == "auto" and len(set(declared.values())) < 2):
        declared = {}
    split: dict[str, str] = {}
    groups: dict[str, list[str]] = {}
    for r in records:
        if _forced(r, forced):
            split[r["key"]] = "test"
        elif declared_split := declared.get(r["key"]):
            split[r["key"]] = declared_split
        else:
            group = f"{r['source']}/patient/{r['patient']}" if r.get("patient") else r["key"]
            groups.setdefault(group, []).append(r["key"])
    free = sorted(groups)
    random.Random(config.seed).shuffle(free)
    total = sum(config.split_ratios)
    n_val = round(len(free) * config.split_ratios[1] / total)
    n_test = round(len(free) * config.split_ratios[2] / total)
    if n_val + n_test >= len(free) and config.split_ratios[0] > 0:  # keep at least one training group
        n_test = max(0, min(n_test, len(free) - 1))
        n_val = max(0, min(n_val, len(free) - 1 - n_test))
    for i, group in enumerate(free):
        for key in groups[group]:
            split[key] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    return split


def _forced(record: dict, forced: set[str]) -> bool:
    return bool(forced) and (
        record["case_id"] in forced or record["key"] in forced or f"{record['source']}/{record['case_id']}" in forced
    )


def _categories(records: list[dict]) -> dict[str, dict[str, Any]]:
    cats: dict[str, dict[str, Any]] = {}
    for r in records:
        for lab in r["labels"]:
            cats.setdefault(
                lab["name"],
                {
                    k: lab[k]
                    for k in (
                        "name",
                        "supercategory",
                        "label",
                        "class",
                        "region",
                        "level",
                        "laterality",
                        "parent",
                        "hierarchy",
                        "mapped",
                    )
                },
            )
    for i, name in enumerate(sorted(cats), start=1):
        cats[name]["id"] = i
    return cats


def odvg_line(image: dict, anns: list[dict], absent: list[str]) -> dict:
    """One ODVG grounding record: caption ``"p1. p2."`` with each region's character span.

    Negative images carry the phrases that were looked for and are absent, and no region.
    """
    phrases = list(dict.fromkeys(a["phrase"] for a in anns)) or absent
    spans, caption = {}, ""
    for p in phrases:
        spans[p] = [len(caption), len(caption) + len(p)]
        caption += p + ". "
    regions = [
        {
            "bbox": [a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]],
            "phrase": a["phrase"],
            "tokens_positive": [spans[a["phrase"]]],
        }
        for a in anns
    ]
    return {
        "filename": image["file_name"],
        "height": image["height"],
        "width": image["width"],
        "modality": image["modality"],
        "grounding": {"caption": caption.strip(), "regions": regions},
    }


def collect(out: Path, keys: list[str], fingerprint: dict[str, str]) -> tuple[list[dict], list[dict]]:
    """The records (with the expected fingerprint) and failure files of ``keys``.

    Raises:
        MedglipError: some case has neither (shards still running).
    """
    records, failures, missing = [], [], []
    for key in keys:
        rp, fpth = out / "records" / f"{key}.json", out / "failures" / f"{key}.json"
        rec = read_json(rp) if rp.exists() else None
        if rec is not None and rec.get("fingerprint") == fingerprint[key]:
            records.append(rec)
        elif fpth.exists():
            failures.append(read_json(fpth))
        else:
            missing.append(key)
    if missing:
        raise MedglipError(f"{out}: {len(missing)} case(s) not built yet (e.g. {missing[:3]}); finish all shards first")
    return records, failures


def merge(out_dir: Path | str) -> MergeResult:
    """Write ``annotations/``, the card and the build report from the per-case records of a build
    (single-source or recipe; every shard finished): each part split by its own policy, one dataset.

    Raises:
        MedglipError: ``out_dir`` holds no build, or some case has neither a record nor a failure file.
    """
    out = Path(out_dir)
    plan = plan_of_folder(out).merge_input(out)
    records: list[dict] = []
    failures: list[dict] = []
    split_of: dict[str, str] = {}
    for part, keys in plan.parts:
        recs, fails = collect(out, list(keys), dict.fromkeys(keys, part.config.fingerprint()))
        split_of.update(assign_splits(recs, part.config, mode=part.split))
        records += recs
        failures += fails
    return write_dataset(
        out,
        records,
        failures,
        split_of,
        n_cases=sum(len(k) for _, k in plan.parts),
        info=plan.info,
        header=plan.header,
        report_extra=plan.report_extra,
        sources=plan.sources,
    )


def write_dataset(
    out: Path,
    records: list[dict],
    failures: list[dict],
    split_of: dict[str, str],
    *,
    n_cases: int,
    info: dict[str, Any],
    header: str,
    report_extra: dict[str, Any] | None = None,
    sources: dict[str, dict[str, Any]] | None = None,
) -> MergeResult:
    """Write the COCO + ODVG annotations, ``label_map.json``, ``build_report.json`` and the card.

    Args:
        split_of: case key → split.
        n_cases: cases listed (built, failed).
        info: extra COCO ``info`` fields (``source``; a recipe's ``sources`` with weights and licences).
        header: the card's first sentence.
        report_extra: more ``build_report.json`` fields (a recipe's failed sources, ...).
        sources: per-source facts for the card's source table (weight, licence, layout, ...).
    """
    with _merge_lock(out):
        return _write_dataset(
            out,
            records,
            failures,
            split_of,
            n_cases=n_cases,
            info=info,
            header=header,
            report_extra=report_extra,
            sources=sources,
        )


@contextmanager
def _merge_lock(out: Path) -> Iterator[None]:
    """Serialise merges of one folder (two shards may finish together) and, holding the lock,
    remove the temporary files an interrupted merge left (no other merge can be writing now)."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".merge.lock", "a+") as fh:
        try:
            import fcntl

            fcntl.flock(fh, fcntl.LOCK_EX)
        except ImportError:  # not POSIX: merges are not serialised
            pass
        for folder in (out, out / "annotations", out / "card_plots"):
            for tmp in folder.glob(".*.tmp") if folder.is_dir() else ():
                tmp.unlink(missing_ok=True)
        yield


def _write_dataset(
    out: Path,
    records: list[dict],
    failures: list[dict],
    split_of: dict[str, str],
    *,
    n_cases: int,
    info: dict[str, Any],
    header: str,
    report_extra: dict[str, Any] | None,
    sources: dict[str, dict[str, Any]] | None,
) -> MergeResult:
    cats = _categories(records)
    coco: dict[str, dict[str, Any]] = {
        s: {
            "info": {"description": f"medglip grounding dataset ({s})", "version": "1.0", **info},
            "licenses": [],
            "images": [],
            "annotations": [],
            "categories": [
                {"id": c["id"], **{k: v for k, v in c.items() if k != "id"}}
                for c in sorted(cats.values(), key=lambda c: c["id"])
            ],
        }
        for s in SPLITS
    }
    odvg: dict[str, list[str]] = {s: [] for s in SPLITS}
    image_id = ann_id = 0
    for rec in records:
        s = split_of[rec["key"]]
        case_phrases = sorted({lab["name"] for lab in rec["labels"]})
        for img in rec["images"]:
            image_id += 1
            anns = img["annotations"]
            coco[s]["images"].append(
                {"id": image_id, **{k: v for k, v in img.items() if k != "annotations"}, "split": s}
            )
            for a in anns:
                ann_id += 1
                coco[s]["annotations"].append(
                    {"id": ann_id, "image_id": image_id, "category_id": cats[a["phrase"]]["id"], **a}
                )
            odvg[s].append(json.dumps(odvg_line(img, anns, case_phrases), ensure_ascii=False))
    for s in SPLITS:
        atomic_write_json(out / "annotations" / f"{s}.json", coco[s])
        atomic_write_text(out / "annotations" / f"{s}.odvg.jsonl", "".join(line + "\n" for line in odvg[s]))
    atomic_write_json(out / "annotations" / "label_map.json", {str(c["id"]): n for n, c in cats.items()}, indent=1)
    unmapped = Counter(lab["source_label"] for r in records for lab in r["labels"] if not lab["mapped"])
    report = {
        "cases": n_cases,
        "built": len(records),
        "failed": len(failures),
        "failures": [{k: f[k] for k in ("key", "files", "error", "reason")} for f in failures],
        "unmapped_labels": dict(sorted(unmapped.items())),
        "warnings": {r["key"]: r["warnings"] for r in records if r["warnings"]},
        "splits": {s: sorted(k for k, v in split_of.items() if v == s) for s in SPLITS},
        **(report_extra or {}),
    }
    atomic_write_json(out / "build_report.json", report, indent=1)
    write_card(out, coco, records, report, header=header, sources=sources)
    log.info("merged %d cases into %s", len(records), out)
    return MergeResult(
        images={s: len(coco[s]["images"]) for s in SPLITS},
        annotations={s: len(coco[s]["annotations"]) for s in SPLITS},
        cases={s: sum(1 for v in split_of.values() if v == s) for s in SPLITS},
        failures=len(failures),
        unmapped=sorted(unmapped),
    )
