"""Benchmark of `medglip build`: cases/s and slices/s on a real volume, for 1 and 2 workers.

The real case is copied N times under distinct ids in a manifest dataset (each copy is read and
processed in full, as a distinct case would be), so the figure measures reading + slicing +
instances + writing, not caching.

    python benchmarks/bench_build.py                       # shipped brain1 MR (256x256x25)
    python benchmarks/bench_build.py --data data/pyradiomics --case lung1 --copies 8   # 512x512x48 CT
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import medglip
from medglip.dataset import BuildConfig, build
from medglip.io import read_image


def make_copies(data: Path, case: str, copies: int, dest: Path) -> tuple[Path, int]:
    manifest = json.loads((data / "medglip_manifest.json").read_text())
    spec = next(c for c in manifest["cases"] if c["id"] == case)
    dest.mkdir(parents=True)
    cases = []
    for n in range(copies):
        img, lab = dest / f"{case}_{n}_image.nrrd", dest / f"{case}_{n}_label.nrrd"
        shutil.copy(data / spec["image"], img)
        shutil.copy(data / spec["label"], lab)
        cases.append({**spec, "id": f"{case}_{n}", "image": img.name, "label": lab.name, "split": None})
    (dest / "medglip_manifest.json").write_text(json.dumps({"medglip_manifest": 1, "name": "bench", "cases": cases}))
    n_slices = read_image(data / spec["image"]).array.shape[2]
    return dest, n_slices


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path(medglip.__file__).parent / "samples" / "pyradiomics")
    ap.add_argument("--case", default="brain1")
    ap.add_argument("--copies", type=int, default=8)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src, n_slices = make_copies(args.data, args.case, args.copies, Path(tmp) / "src")
        print(f"case {args.case}: {n_slices} axial slices, {args.copies} copies")
        print("| workers | seconds | cases/s | slices/s | images written |")
        print("|---:|---:|---:|---:|---:|")
        for w in args.workers:
            out = Path(tmp) / f"out{w}"
            t0 = time.perf_counter()
            res = build(BuildConfig(source=str(src), layout="manifest"), out, workers=w)
            dt = time.perf_counter() - t0
            assert not res.failed, res.failed
            images = sum(res.merged.images.values())
            print(f"| {w} | {dt:.2f} | {args.copies / dt:.2f} | {args.copies * n_slices / dt:.1f} | {images} |")


if __name__ == "__main__":
    main()
