"""``keep_share`` measured after the fact: an adapted run's weights averaged with its start model's.

``medglip adapt --keep-share A`` keeps the share A of what training changed (WiSE-FT weight averaging);
on a run adapted with the whole change (``A = 1``), the same arithmetic gives the run that ``A`` would
have made, without training again. Each averaged run is measured as benchmarks/adapt_curves.py measures
a run: Acc@0.5 / mIoU on the few-shot set's validation and test patients, and forgetting (Acc@0.5 of
start and averaged run, per phrase) on ``--reference``'s test split.

    python benchmarks/adapt_keep_share.py ../runs/adapt-leave-out/curves/runs/msd_hippocampus-10-full+replay-10min \\
        --start ../runs/adapt-leave-out/run --data ../runs/adapt-leave-out/curves/data/msd_hippocampus-10 \\
        --reference ../runs/adapt-leave-out/reference --keep 0.5
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

from adapt_curves import forgetting_row, val_forgetting

from medglip.evaluate.calibration import evaluate_run
from medglip.model import load_checkpoint, save_checkpoint
from medglip.train.adapt import keep_share_of_change
from medglip.train.adapt_card import forgetting


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="a run adapted with the whole change (keep_share 1)")
    ap.add_argument("--start", type=Path, required=True, help="its start model's run folder")
    ap.add_argument("--data", type=Path, required=True, help="the few-shot set (val / test: unseen patients)")
    ap.add_argument("--reference", type=Path, required=True, help="the start model's test patients")
    ap.add_argument("--keep", type=float, nargs="+", default=[0.5])
    args = ap.parse_args()
    base = load_checkpoint(args.start)
    for keep in args.keep:
        out = args.run.parent / f"{args.run.name}-keep{keep:g}"
        if not (out / "model.safetensors").exists():
            shutil.copytree(args.run, out, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("model.safetensors", "eval-*", "calibration"))
            model = load_checkpoint(args.run)
            keep_share_of_change(model, base, {}, keep)  # what adapt --keep-share does
            ref = {"kind": "run", "path": str(args.start.resolve()),
                   "relative": os.path.relpath(args.start.resolve(), out.resolve())}
            save_checkpoint(model, out, base=(base, ref))
        val, _, _ = evaluate_run(out, args.data, "val", out / "eval-val", phrases="case")
        test, _, _ = evaluate_run(out, args.data, "test", out / "eval-test", phrases="case")
        f = forgetting(out, args.reference, base=args.start)
        fv = val_forgetting(out, args.reference, args.start)
        print(json.dumps({"run": out.name, "keep_share": keep, "val_acc50": val["overall"]["acc50"],
                          **({"val_forgetting": fv} if fv else {}),
                          "acc50": test["overall"]["acc50"], "miou": test["overall"]["miou"],
                          "forgetting": forgetting_row(f)}), flush=True)


if __name__ == "__main__":
    main()
