"""Scale of recipe builds: throughput with workers and with shards side by side, and a projection.

A 200-case, three-source recipe is made from the real MR cases shipped with medglip (pyradiomics
brain1 256x256x25, brain2 256x256x23, breast1 45x120x21): every case is a distinct id (its files
are symbolic links to the shipped ones) in one manifest per source, so each case is read and
processed in full. The recipe is built three ways into fresh folders:

1. one worker process;
2. ``--workers 2``;
3. two shards side by side (``medglip build-recipe --shard 0/2`` and ``1/2`` as two processes),
   then ``medglip merge``.

For each: wall time, slices scanned/s, slices/s per core, annotations/s, and the output's size.
From the best per-core rate and the bytes per annotation it projects the time and storage of a
5.3 M-annotation (Med-GLIP-5M-sized) build on N machines of C cores.

    python benchmarks/bench_recipe.py                      # 200 cases (about 2-4 min on 2 cores)
    python benchmarks/bench_recipe.py --cases 60 --cores 32 --machines 1 8 32
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import medglip
from medglip.dataset import build_recipe, load_recipe, merge
from medglip.io import read_image

SAMPLES = Path(medglip.__file__).parent / "samples" / "pyradiomics"
SOURCES = (("brain_a", "brain1", "brain tumor"), ("breast", "breast1", "breast lesion"), ("brain_b", "brain2", "brain tumor"))
TARGET = 5_300_000  # region annotations in Med-GLIP-5M


def make_recipe(root: Path, n_cases: int) -> tuple[Path, int]:
    """Three manifest sources sharing ``n_cases`` cases; returns the recipe and the slices to scan."""
    sources, slices = [], 0
    for i, (sid, case, label) in enumerate(SOURCES):
        count = n_cases // len(SOURCES) + (1 if i < n_cases % len(SOURCES) else 0)
        folder = root / sid
        folder.mkdir(parents=True)
        cases = []
        for n in range(count):
            for kind in ("image", "label"):
                os.symlink(SAMPLES / f"{case}_{kind}.nrrd", folder / f"{case}_{n:03d}_{kind}.nrrd")
            cases.append({"id": f"{case}_{n:03d}", "image": f"{case}_{n:03d}_image.nrrd",
                          "label": f"{case}_{n:03d}_label.nrrd", "modality": "MR", "labels": {"1": label}})
        (folder / "medglip_manifest.json").write_text(json.dumps({"medglip_manifest": 1, "name": sid, "cases": cases}))
        slices += count * read_image(SAMPLES / f"{case}_image.nrrd").array.shape[2]
        sources.append(f"  - {{id: {sid}, path: {folder}, weight: {1.0 + i}, licence: BSD-3-Clause}}")
    recipe = root / "recipe.yaml"
    recipe.write_text("recipe: 1\nname: bench\nsources:\n" + "\n".join(sources) + "\n")
    return recipe, slices


def output_stats(out: Path) -> tuple[int, int, int]:
    """(annotations, images, bytes of images/ + annotations/)."""
    anns = imgs = 0
    for s in ("train", "val", "test"):
        d = json.loads((out / "annotations" / f"{s}.json").read_text())
        anns += len(d["annotations"])
        imgs += len(d["images"])
    size = sum(p.stat().st_size for sub in ("images", "annotations") for p in (out / sub).rglob("*") if p.is_file())
    return anns, imgs, size


def cpu_seconds() -> float:
    """User + system CPU time of this process and of its finished children (workers, shard processes)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def shards_side_by_side(recipe: Path, out: Path, n: int) -> float:
    cmd = [sys.executable, "-m", "medglip", "build-recipe", str(recipe), str(out)]
    t0 = time.perf_counter()
    procs = [subprocess.Popen(cmd + ["--shard", f"{k}/{n}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for k in range(n)]
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"shard failed: {err.decode()[-2000:]}")
    if not (out / "card.json").exists():  # both finished at once: neither saw the other's last case
        merge(out)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=200)
    ap.add_argument("--cores", type=int, default=32, help="cores per machine in the projection")
    ap.add_argument("--machines", type=int, nargs="+", default=[1, 4, 16, 64])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        recipe_path, slices = make_recipe(Path(tmp) / "src", args.cases)
        recipe = load_recipe(recipe_path)
        print(f"{args.cases} cases in {len(SOURCES)} sources, {slices} axial slices to scan; "
              f"{os.cpu_count()} CPU cores on this machine")
        rows = []
        for label, procs, run in (
                ("1 worker", 1, lambda out: build_recipe(recipe, out, workers=1)),
                ("2 workers", 2, lambda out: build_recipe(recipe, out, workers=2)),
                ("2 shards side by side", 2, lambda out: shards_side_by_side(recipe_path, out, 2))):
            out = Path(tmp) / label.replace(" ", "_")
            t0, c0 = time.perf_counter(), cpu_seconds()
            res = run(out)
            dt, cpu = time.perf_counter() - t0, cpu_seconds() - c0
            if not isinstance(res, float):
                assert not res.failed and res.merged is not None, res.failed
            anns, imgs, size = output_stats(out)
            rows.append((label, procs, dt, anns, imgs, size, cpu))
        print("\n| run | processes | wall s | CPU s | slices/s | slices/s per core (wall) | slices per CPU-s | "
              "annotations/s | images | annotations | output MB |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for label, procs, dt, anns, imgs, size, cpu in rows:
            print(f"| {label} | {procs} | {dt:.1f} | {cpu:.1f} | {slices / dt:.1f} | {slices / dt / procs:.1f} | "
                  f"{slices / cpu:.1f} | {anns / dt:.1f} | {imgs} | {anns} | {size / 1e6:.1f} |")
        base = rows[0][3] / rows[0][2]
        scaling = {r[0]: (r[3] / r[2]) / base for r in rows[1:]}
        per_core = max(r[3] / r[6] for r in rows)  # annotations per CPU-second: what a dedicated core delivers
        bytes_per_ann = rows[0][5] / rows[0][3]
        print("\nwall-clock speed-up over 1 worker: " + ", ".join(f"{k} x{v:.2f}" for k, v in scaling.items()))
        print(f"rate per core: {per_core:.1f} annotations per CPU-second (best run); {bytes_per_ann / 1e3:.1f} kB per "
              "annotation (PNG slices incl. negatives + COCO/ODVG JSON with RLE masks)")
        print(f"\nProjection for {TARGET / 1e6:.1f} M annotations at that rate on dedicated cores, shards scaling "
              f"linearly (independent processes); storage {TARGET * bytes_per_ann / 1e9:.0f} GB:")
        print(f"\n| machines x {args.cores} cores | hours | core-hours |")
        print("|---:|---:|---:|")
        core_hours = TARGET / per_core / 3600
        for n in args.machines:
            print(f"| {n} | {core_hours / (n * args.cores):.2f} | {core_hours:.0f} |")


if __name__ == "__main__":
    main()
