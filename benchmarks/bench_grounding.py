"""What grounding costs as users use it: many phrases on one slice, a whole CT volume, NIfTI vs NRRD.

- phrases: one 512×512 CT slice with 5, 30 and 117 phrases (the TotalSegmentator classes, from the
  catalogue), ``Grounder.ground`` end to end (input pipeline, model, post-processing): the image
  encoders run once per image, only fusion and the head per prompt chunk;
- volume: a whole CT volume (lung1, 512×512×48, from ``scripts/fetch_pyradiomics.sh``), 5
  phrases, ``Grounder.ground_volume`` without masks, from its NRRD and from the same volume as NIfTI
  (nibabel gives Fortran-ordered arrays: slices are views, never a copy of the volume);
- build: ``medglip build`` of that case from NRRD and from NIfTI (scanned slices/s).

    python benchmarks/bench_grounding.py --data data/pyradiomics [--preset default] [--image-size 512]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

PHRASES5 = ["lung tumor", "liver", "left kidney", "right kidney", "spleen"]


def _grounder(preset: str, size: int):
    from medglip.infer import Grounder
    from medglip.model import GroundingModel, get_preset

    torch.manual_seed(0)
    return Grounder(GroundingModel(get_preset(preset, image_size=size)).eval(), refiner=None)


def _best(fn, repeat: int) -> float:
    fn()  # warm-up (allocations, text cache)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="folder of scripts/fetch_pyradiomics.sh (lung1)")
    ap.add_argument("--preset", default="default")
    ap.add_argument("--image-size", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", choices=("phrases", "volume"), help="run one part (default: all)")
    args = ap.parse_args()

    import SimpleITK as sitk

    from medglip.dataset import BuildConfig, build
    from medglip.catalog import get_entry
    from medglip.core.orient import plan_slices
    from medglip.io import read_image

    print(f"torch threads {torch.get_num_threads()}, preset {args.preset} at {args.image_size} px, CPU")
    g = _grounder(args.preset, args.image_size)
    nrrd = args.data / "lung1_image.nrrd"
    ct = read_image(nrrd)
    plan = plan_slices(ct.geometry, ct.array.shape, "axial")
    slice_ = np.ascontiguousarray(plan.view(ct.array, plan.n_slices // 2))
    total = [str(n) for n in get_entry("totalsegmentator").label_names][:117]
    phrases = {5: PHRASES5, 30: total[:30], 117: total}
    if args.only == "volume":
        phrases = {}
    print("\n| phrases on one 512² CT slice | prompt chunks | s per slice | × 5 phrases |")
    print("|---:|---:|---:|---:|")
    base = None
    for n, ps in phrases.items():
        dt = _best(lambda: g.ground_one(slice_, ps, modality="CT", score_threshold=None), args.repeat)
        base = base or dt
        print(f"| {n} | {len(g._chunks(tuple(ps)))} | {dt:.3f} | {dt / base:.2f} |", flush=True)

    if args.only == "phrases":
        return
    tmp = Path(tempfile.mkdtemp(prefix="bench-grounding-"))
    try:
        nii = tmp / "lung1.nii.gz"
        sitk.WriteImage(sitk.ReadImage(str(nrrd)), str(nii))
        print(f"\n| whole volume, 5 phrases, no masks ({'×'.join(map(str, ct.array.shape))}) | s | s per slice |")
        print("|---|---:|---:|")
        for name, path in (("NRRD", nrrd), ("NIfTI (.nii.gz)", nii)):
            dt = _best(lambda: g.ground_volume(path, PHRASES5, modality="CT"), max(1, args.repeat - 1))
            print(f"| {name} | {dt:.2f} | {dt / plan.n_slices:.3f} |", flush=True)

        manifest = json.loads((args.data / "medglip_manifest.json").read_text())
        spec = next(c for c in manifest["cases"] if c["id"] == "lung1")
        from medglip.ontology import load_ontology

        load_ontology()  # loaded once per process: not part of a case's cost
        print("\n| build of lung1 (512×512×48 CT), 1 worker | s | scanned slices/s |")
        print("|---|---:|---:|")
        for name, image in (("NRRD", nrrd), ("NIfTI (.nii.gz)", nii)):
            src = tmp / f"src-{name[:4]}"
            src.mkdir()
            shutil.copy(image, src / image.name)
            shutil.copy(args.data / spec["label"], src / "label.nrrd")
            (src / "medglip_manifest.json").write_text(json.dumps({"medglip_manifest": 1, "name": "b", "cases": [
                {**spec, "image": image.name, "label": "label.nrrd", "split": None}]}))
            t0 = time.perf_counter()
            build(BuildConfig(source=str(src), negative_ratio=1.0, split_ratios=(1, 0, 0)), tmp / f"out-{name[:4]}")
            dt = time.perf_counter() - t0
            print(f"| {name} | {dt:.2f} | {plan.n_slices / dt:.1f} |", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
