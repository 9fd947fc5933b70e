"""The realistic case of ``medglip adapt``: the shipped recipe trained without one source, then adapted to it.

Trains a variant of the shipped model (``--shipped``'s own training settings, on ``--data``, the shipped
recipe's built dataset, less every image of ``--leave-out``; ``--steps`` steps, resumable). Its test
patients of the other sources are then the reference on which adapting to the left-out source must not
forget (``WORK/reference``: the recipe's test split without the left-out source). Run
benchmarks/adapt_curves.py with ``--base WORK/run --reference WORK/reference`` next.

    python benchmarks/adapt_leave_out.py --shipped ../runs/run-medglip-v1 --data ../runs/data-medglip-v1 \\
        --leave-out msd_hippocampus --steps 600 --work ../runs/adapt-leave-out
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from medglip.protocol import _overlay
from medglip.train import TrainConfig, train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shipped", type=Path, required=True, help="the shipped model's run folder")
    ap.add_argument("--data", type=Path, required=True, help="the shipped recipe's built dataset")
    ap.add_argument("--leave-out", required=True, help="the source the variant never sees")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--work", type=Path, required=True)
    args = ap.parse_args()

    def kept(im: dict) -> bool:
        return im.get("source") != args.leave_out

    data, reference = args.work / "data", args.work / "reference"
    if not (data / "annotations" / "val.json").exists():
        for split in ("train", "val"):
            _overlay(args.data, data, split, {split: kept})
    if not (reference / "annotations" / "test.json").exists():
        _overlay(args.data, reference, "test", {"test": kept})
    saved = json.loads((args.shipped / "train_config.json").read_text())["config"]
    as_tuples = {k: tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v
                 for k, v in saved.items()}
    cfg = TrainConfig(**{**as_tuples, "max_steps": args.steps, "device": "cpu"})
    run = args.work / "run"
    train(data, run, cfg, resume=(run / "checkpoints" / "latest.json").is_file(), progress=False)
    print(f"variant without {args.leave_out}: {run}")


if __name__ == "__main__":
    main()
