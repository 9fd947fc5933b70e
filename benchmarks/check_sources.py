"""Real-data check of the layout adapters: list and load every case of each dataset folder, and count.

    python benchmarks/check_sources.py ../shared/data/lgg-mri ../shared/data/ph2-dermoscopy
    python benchmarks/check_sources.py ../shared/data/msd-hippocampus --build /tmp/check   # also build each

Per folder: the detected layout; cases listed and loaded (failures with their reason); patients
(``meta["patient"]``; "-" when the source names none); 2D cases with a finding and without one
(``no_finding``, built as negative images); for volumes, the slices of the build's plane with and
without a label; every source label name with the phrase it resolves to. With ``--build OUT`` each
folder is also built (``medglip build``, 1 worker, into ``OUT/<folder>``) and the built images,
negative images (with their ``absent`` phrases) and the split of each patient are counted. Prints
Markdown; exit status 1 when a case failed to load or build.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from medglip import sources as S
from medglip.dataset import BuildConfig, build
from medglip.core.orient import plan_slices
from medglip.errors import MedglipError
from medglip.ontology import load_ontology


def check_folder(root: Path, plane: str) -> dict:
    """Load every case of ``root``; the counts of :func:`main`'s table."""
    onto = load_ontology()
    layout = S.detect_layout(root)
    refs = S.list_cases(root)
    out = {"folder": root.name, "layout": layout, "cases": len(refs), "failed": [], "patients": set(),
           "positive": 0, "negative": 0, "slices_pos": 0, "slices_neg": 0, "labels": Counter(), "phrases": {}}
    for ref in refs:
        try:
            case = S.load_case(ref)
        except MedglipError as exc:
            out["failed"].append(f"{ref.case_id}: {exc}")
            continue
        if case.meta.get("patient"):
            out["patients"].add(case.meta["patient"])
        names = {n for lm in case.labels for n in lm.names.values()}
        for n in names:
            r = onto.resolve(n, source=case.source, modality=case.modality, context=tuple(names))
            out["phrases"][n] = r.phrase if r.mapped else f"{r.phrase} (unmapped)"
        labelled = [lm.array != 0 for lm in case.labels]
        for lm in case.labels:
            out["labels"].update(lm.names[int(v)] for v in np.unique(lm.array) if v)
        if case.spatial_ndim == 2:
            out["negative" if case.meta.get("no_finding") else "positive"] += 1
            continue
        plan = plan_slices(case.geometry, case.spatial_shape, plane)
        any_label = np.logical_or.reduce(labelled) if labelled else np.zeros(case.spatial_shape, bool)
        per_slice = [bool(plan.take(any_label, k).any()) for k in range(plan.n_slices)]
        out["slices_pos"] += sum(per_slice)
        out["slices_neg"] += len(per_slice) - sum(per_slice)
        out["positive" if any(per_slice) else "negative"] += 1
    return out


def build_folder(root: Path, out: Path) -> dict:
    """Build ``root`` into ``out`` and count what the dataset holds."""
    res = build(BuildConfig(source=str(root)), out, workers=1)
    report = json.loads((out / "build_report.json").read_text())
    images, negatives, absent, split_of_patient = 0, 0, Counter(), defaultdict(set)
    for split in ("train", "val", "test"):
        coco = json.loads((out / "annotations" / f"{split}.json").read_text())
        images += len(coco["images"])
        for im in coco["images"]:
            negatives += bool(im["negative"])
            absent.update(im.get("absent") or ())
    for rec_path in (out / "records").rglob("*.json"):
        rec = json.loads(rec_path.read_text())
        if rec.get("patient"):
            split_of_patient[rec["patient"]].add(next(s for s, keys in report["splits"].items() if rec["key"] in keys))
    return {"built": report["built"], "build_failed": [f"{f['key']}: {f['reason']}" for f in report["failures"]],
            "images": images, "negative_images": negatives, "absent": dict(absent),
            "patients_split": sum(len(s) > 1 for s in split_of_patient.values()), "merged": res.merged is not None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("--plane", default="axial", help="plane of the volume slice counts (the build's default)")
    ap.add_argument("--build", type=Path, default=None, help="also build each folder under this folder")
    args = ap.parse_args(argv)
    bad = False
    print("| folder | layout | cases | failed | patients | with finding | no finding | volume slices +/- |")
    print("|---|---|---|---|---|---|---|---|")
    details = []
    for root in args.folders:
        r = check_folder(root, args.plane)
        bad |= bool(r["failed"])
        slices = f"{r['slices_pos']} / {r['slices_neg']}" if r["slices_pos"] + r["slices_neg"] else "-"
        print(f"| {r['folder']} | {r['layout']} | {r['cases']} | {len(r['failed'])} | {len(r['patients']) or '-'} "
              f"| {r['positive']} | {r['negative']} | {slices} |")
        details.append((root, r))
    for root, r in details:
        print(f"\n{r['folder']}: labels → phrases: " + ", ".join(
            f"{n!r} → {p!r} ({r['labels'].get(n, 0)} cases)" for n, p in sorted(r["phrases"].items())))
        for f in r["failed"][:20]:
            print(f"  load failed: {f}")
        if args.build is not None:
            b = build_folder(root, args.build / root.name)
            bad |= bool(b["build_failed"])
            print(f"  built {b['built']} cases, {b['images']} images ({b['negative_images']} negative; absent phrases "
                  f"{b['absent']}); patients in more than one split: {b['patients_split']}; merged: {b['merged']}")
            for f in b["build_failed"][:20]:
                print(f"  build failed: {f}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
