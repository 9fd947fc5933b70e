"""The realistic case of ``medglip adapt``: the shipped recipe trained without one source, then adapted to it.

Trains a variant of the shipped model (``--shipped``'s own training settings, on ``--data``, the shipped
recipe's built dataset, less every image of ``--leave-out``; ``--steps`` steps, resumable). Its test
patients of the other sources are then the reference on which adapting to the left-out source must not
forget (``WORK/reference``: the recipe's test split without the left-out source; its validation split
too, the forgetting settings are chosen on). Run
benchmarks/adapt_curves.py with ``--base WORK/run --reference WORK/reference`` next.

``--rehearsal NAME --patients P,... [--whole-sources S,...]`` instead writes ``WORK/NAME``, a rehearsal
set for ``adapt_curves.py --replay``: the recipe's training images of those patients (and of every
training patient of those sources), as many as the shipped model carries:

    python benchmarks/adapt_leave_out.py ... --rehearsal rehearsal-small \
        --patients lgg_mri/TCGA_CS_4941_19960909,lgg_mri/TCGA_CS_5393_19990606
    python benchmarks/adapt_leave_out.py ... --rehearsal rehearsal-small-ct \
        --patients lgg_mri/TCGA_CS_4941_19960909,lgg_mri/TCGA_CS_5393_19990606 \
        --whole-sources lidc_nodules,msd_lung_slices

    python benchmarks/adapt_leave_out.py --shipped ../runs/run-medglip-v1 --data ../runs/data-medglip-v1 \\
        --leave-out msd_hippocampus --steps 600 --work ../runs/adapt-leave-out
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from medglip.protocol import _overlay, patient_of
from medglip.train import TrainConfig, train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shipped", type=Path, required=True, help="the shipped model's run folder")
    ap.add_argument("--data", type=Path, required=True, help="the shipped recipe's built dataset")
    ap.add_argument("--leave-out", required=True, help="the source the variant never sees")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--rehearsal", help="write the rehearsal set WORK/REHEARSAL and stop")
    ap.add_argument("--patients", default="", help="source/patient ids of the rehearsal set")
    ap.add_argument("--whole-sources", default="", help="sources whose training images all go in it")
    args = ap.parse_args()
    if args.rehearsal:
        wanted, whole = set(filter(None, args.patients.split(","))), set(filter(None, args.whole_sources.split(",")))

        def rehearsed(im: dict) -> bool:
            return im.get("source") in whole or patient_of(args.data, im.get("source"), im.get("case_id")) in wanted

        _overlay(args.data, args.work / args.rehearsal, "train", {"train": rehearsed})
        print(f"rehearsal set: {args.work / args.rehearsal}")
        return

    def kept(im: dict) -> bool:
        return im.get("source") != args.leave_out

    data, reference = args.work / "data", args.work / "reference"
    if not (data / "annotations" / "val.json").exists():
        for split in ("train", "val"):
            _overlay(args.data, data, split, {split: kept})
    if not (reference / "annotations" / "test.json").exists():
        _overlay(args.data, reference, "test", {"test": kept})
    if not (reference / "annotations" / "val.json").exists():  # forgetting where settings are chosen
        _overlay(args.data, reference, "val", {"val": kept})
    saved = json.loads((args.shipped / "train_config.json").read_text())["config"]
    as_tuples = {k: tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v
                 for k, v in saved.items()}
    cfg = TrainConfig(**{**as_tuples, "max_steps": args.steps, "device": "cpu"})
    run = args.work / "run"
    train(data, run, cfg, resume=(run / "checkpoints" / "latest.json").is_file(), progress=False)
    print(f"variant without {args.leave_out}: {run}")


if __name__ == "__main__":
    main()
