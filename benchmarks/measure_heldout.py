"""Issue 9's held-out measurement: leave-one-patient-out on the training patients (per-fold metrics and
the calibrated thresholds), the final model on every training case, then the held-out patients
(lung2, brain2: never trained on) measured once, with LiteMedSAM masks. The figures in README
"Held-out accuracy" come from this script.

    bash scripts/fetch_training_data.sh data/train-sources
    medglip build-recipe data/train-sources/recipe.yaml data/ds-all
    python benchmarks/measure_heldout.py data/ds-all runs/heldout     # ≈ 35 min on 2 CPU cores

The same as ``medglip lopo data/ds-all --out runs/heldout --max-steps 400 --image-size 256
--warmup-steps 40 --mask-weight 0`` then ``medglip heldout data/ds-all --checkpoint runs/heldout/final
--masks medsam``. A crashed run resumes where it stopped. The 2.5D variant: add ``context_slices: 1``
to the recipe's settings, build it into another folder, and pass ``--context-slices 1``. Every slice
of the training volumes: ``negative_ratio: 20`` in the recipe's settings, built into ``data/ds-allslices``,
then ``--heldout-dataset data/ds-all`` so the held-out slices are the standard build's (the folds' models
are also evaluated on the standard build's slices of each training patient: ``OUT/lopo-same-slices/lopo.md``,
what the comparison with the standard run uses). The elastic deformation: ``--elastic 0.5``. The
pretrained image encoders kept frozen (GLIP's few-shot setting): ``--freeze image_backbones``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import torch

from medglip.protocol import (evaluate_run, fold_name, heldout_report, lopo, lopo_markdown, make_fold,
                              mean_metrics)
from medglip.train import TrainConfig
from medglip.train.config import FREEZABLE


def same_slices(summary: dict, dataset: Path, out: Path) -> str:
    """The folds' models evaluated on ``dataset``'s slices of each held-out training patient, so that runs
    built with other slice settings are compared on the same slices (``out/lopo.md``)."""
    folds = []
    for fold in summary["folds"]:
        source, case = fold["patient"].split("/", 1)
        name = fold_name(source, case)
        data = make_fold(dataset, (source, case), out / name / "data")
        run = Path(summary["final_run"]).parent / "folds" / name / "run"
        metrics, _, _ = evaluate_run(run, data, "test", out / name / "eval")
        folds.append({"patient": fold["patient"], "overall": metrics["overall"]})
    text = lopo_markdown({"folds": folds, "mean": mean_metrics([f["overall"] for f in folds]),
                          "thresholds": summary["thresholds"]},
                         title=f"Leave-one-patient-out, the folds' models on {dataset}'s slices")
    (out / "lopo.md").write_text(text, encoding="utf-8")
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", type=Path, help="built by medglip build-recipe (train: lung1, brain1, breast1, "
                                               "MNI152, ITK; test: lung2, brain2)")
    ap.add_argument("out", type=Path)
    ap.add_argument("--max-steps", type=int, default=400)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--context-slices", type=int, default=0,
                    help="2.5D input (the dataset must be built with the same context_slices setting)")
    ap.add_argument("--elastic", type=float, default=0.0,
                    help="probability of the elastic deformation (TrainConfig.elastic_prob; 0: off, the default)")
    ap.add_argument("--freeze", action="append", default=[], choices=FREEZABLE,
                    help="keep this model part as it starts (TrainConfig.freeze); repeatable")
    ap.add_argument("--heldout-dataset", type=Path, default=None,
                    help="measure the held-out patients on this dataset's test split (default: DATASET's), "
                         "e.g. the standard build when DATASET was built with other slice settings")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    cfg = TrainConfig(preset="default", max_steps=args.max_steps, batch_size=4, lr=3e-4, warmup_steps=40,
                      device="cpu", checkpoint_every=200, log_every=50, seed=0, mask_weight=0.0,
                      elastic_prob=args.elastic, freeze=tuple(args.freeze),
                      model_overrides=(("image_size", 256),) + (
                          (("context_slices", args.context_slices),) if args.context_slices else ()))
    t0 = time.time()
    summary = lopo(args.dataset, args.out, cfg)
    print((args.out / "lopo.md").read_text())
    if args.heldout_dataset:
        print(same_slices(summary, args.heldout_dataset, args.out / "lopo-same-slices"))
    report = heldout_report(args.out / "final", args.heldout_dataset or args.dataset, args.out / "heldout",
                            masks="medsam")
    print((args.out / "heldout" / "heldout.md").read_text())
    print(json.dumps({"thresholds": summary["thresholds"], "minutes": round((time.time() - t0) / 60, 1),
                      "patients": [r["patient"] for r in report["patients"]]}))


if __name__ == "__main__":
    main()
