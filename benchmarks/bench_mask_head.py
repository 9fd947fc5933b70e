"""The mask head of a checkpoint against LiteMedSAM, given the same true boxes: Dice and seconds per slice.

Every axial lesion slice of the chosen real pyradiomics cases (default: the held-out lung2 and brain2 of
``scripts/fetch_pyradiomics.sh``), one true box per connected component of the lesion label, both
methods through ``Grounder.masks_for_boxes`` (the same model pixels the Grounder uses: the head reads
the checkpoint's fused features of the lesion's phrase; LiteMedSAM the picture of those pixels). Time
per slice includes each method's image encoder; one torch thread.

    python benchmarks/bench_mask_head.py --checkpoint RUN [--data data/pyradiomics] [--cases lung2 brain2]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage as ndi

from medglip.core.masks import dice
from medglip.core.orient import plan_slices
from medglip.infer import Grounder
from medglip.infer.medsam import mask_box
from medglip.io import read_image, read_label

PHRASE = {"lung": "lung tumor", "brain": "brain tumor", "breast": "breast lesion"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--data", type=Path, default=Path("data/pyradiomics"))
    ap.add_argument("--cases", nargs="*", default=["lung2", "brain2"])
    ap.add_argument("--json", type=Path, default=None, help="Also write the table as JSON.")
    args = ap.parse_args()
    torch.set_num_threads(1)
    manifest = json.loads((args.data / "medglip_manifest.json").read_text())
    g = Grounder.from_pretrained(args.checkpoint, refiner="medsam")
    print("| case | modality | lesion slices | method | mean Dice per slice | Dice of the whole lesion | s/slice (CPU, 1 thread) |")
    print("|---|---|---:|---|---:|---:|---:|")
    rows = []
    for c in manifest["cases"]:
        if c["id"] not in args.cases:
            continue
        img = read_image(args.data / c["image"])
        lab = read_label(args.data / c["label"], img)
        plan = plan_slices(img.geometry, img.spatial_shape, "axial")
        phrase = PHRASE[next(k for k in PHRASE if c["id"].startswith(k))]
        stats = {m: {"dice": [], "inter": 0, "total": 0, "s": 0.0} for m in ("head", "medsam")}
        warm = True
        for k in range(plan.n_slices):
            truth = plan.take(lab.array, k) > 0
            if not truth.any():
                continue
            comps, n = ndi.label(truth)
            boxes = np.stack([mask_box(comps == i) for i in range(1, n + 1)]).astype(np.float32)
            raw = plan.take(img.array, k)
            for method in ("head", "medsam"):
                if warm:  # loads LiteMedSAM, encodes the phrase: not timed
                    g.masks_for_boxes(raw, boxes[:1], phrase, modality=c["modality"], source=method)
                t0 = time.perf_counter()
                pred = g.masks_for_boxes(raw, boxes, phrase, modality=c["modality"], source=method).any(0)
                st = stats[method]
                st["s"] += time.perf_counter() - t0
                st["dice"].append(dice(pred, truth))
                st["inter"] += int((pred & truth).sum())
                st["total"] += int(pred.sum() + truth.sum())
            warm = False
        for method, st in stats.items():
            n = len(st["dice"])
            row = {"case": c["id"], "modality": c["modality"], "slices": n, "method": method,
                   "mean_dice": float(np.mean(st["dice"])), "lesion_dice": 2 * st["inter"] / max(1, st["total"]),
                   "s_per_slice": st["s"] / max(1, n)}
            rows.append(row)
            name = "mask head" if method == "head" else "LiteMedSAM"
            print(f"| {c['id']} | {c['modality']} | {n} | {name} | {row['mean_dice']:.3f} | {row['lesion_dice']:.3f} | "
                  f"{row['s_per_slice']:.3f} |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
