"""Few-shot curves of ``medglip adapt``: k labelled patients of a finding the start model never saw.

The start model (``--base``) is a run trained without the sources measured here (for the figures in
docs/benchmarks.md: benchmarks/ct_input_choice.py's ``three_windows`` run, trained on the CT sources
only, so brain MR, the hippocampus and the glioma are all new to it). For each source, the first k
training patients (a fixed shuffled order, so the 3-patient set holds the 1-patient one) make the
adaptation set; the source's test patients of the recipe dataset (``--data``, the shipped recipe's
patient split) measure Acc@0.5 and mIoU, the same patients the shipped model's figures come from.
Forgetting: Acc@0.5 of base and adapted on ``--reference``'s test split (the base's own test patients).

    python benchmarks/adapt_curves.py --base ../runs/ct-choice/three_windows/run \\
        --data ../runs/data-medglip-v1 --reference ../runs/ct-choice/three_windows/data \\
        --sources msd_hippocampus,lgg_mri --shots 1,3,5,10 --methods head --budget-minutes 3

A method ``full@0.1`` is full fine-tuning with the shared parts at 0.1 of the rate (``shared_lr_scale``);
a ``+replay`` suffix (``full+replay``, ``encoder@0.1+replay``: any method) rehearses ``--replay``'s training
split (the base's own training data) every other step.
Each run is measured on the source's validation patients too (``val_acc50``, ``val_miou``): settings
are chosen on those, never on the test patients.

``--methods scratch`` trains the preset from its package weights on the same k patients for as many steps
as ``full`` took in the same budget (run ``full`` first). Results are appended to ``WORK/adapt_curves.jsonl``
(one line per run; a run already there is skipped).
"""
from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from medglip.evaluate.calibration import evaluate_run
from medglip.protocol import _overlay, patient_of
from medglip.train.adapt import adapt
from medglip.train.adapt_card import Forgetting, forgetting

REPO = Path(__file__).resolve().parents[1]


def patients(data: Path, source: str, split: str) -> dict[str, set[str]]:
    """patient → the case ids of ``source`` in ``split``."""
    coco = json.loads((data / "annotations" / f"{split}.json").read_text())
    out: dict[str, set[str]] = {}
    for im in coco["images"]:
        if im.get("source") == source:
            out.setdefault(patient_of(data, source, im.get("case_id")), set()).add(str(im.get("case_id")))
    return out


def few_shot_set(data: Path, source: str, k: int, out: Path, seed: int = 0) -> Path:
    """An overlay dataset: ``train`` = the first ``k`` training patients of ``source`` (seeded order),
    ``val`` / ``test`` = the source's validation / test patients."""
    train = patients(data, source, "train")
    order = sorted(train)
    random.Random(seed).shuffle(order)
    cases = set().union(*(train[p] for p in order[:k]))
    if not (out / "annotations" / "test.json").exists():
        def chosen(im: dict) -> bool:
            return im.get("source") == source and str(im.get("case_id")) in cases

        _overlay(data, out, "train", {"train": chosen})
        _overlay(data, out, "test", {"test": lambda im: im.get("source") == source})
    if not (out / "annotations" / "val.json").exists():
        _overlay(data, out, "val", {"val": lambda im: im.get("source") == source})
    return out


def scratch(args: argparse.Namespace, source: str, k: int, data: Path, run: Path, name: str,
            done: set[str]) -> dict:
    """``medglip train`` from the preset's package weights on the same k patients, for as many steps as
    full fine-tuning took in the same budget (the same compute, without the start model)."""
    from medglip.train import TrainConfig, train

    full = f"{source}-{k}-full-{args.budget_minutes:g}min"
    rows = [json.loads(line) for line in (args.work / "adapt_curves.jsonl").read_text().splitlines()]
    steps = next((r["steps"] for r in rows if r["name"] == full), None)
    if steps is None:
        raise SystemExit(f"{name}: measure {full} first (its steps set the from-scratch run's)")
    t0 = time.time()
    if not (run / "model.safetensors").is_file():
        train(data, run, TrainConfig(preset="default", model_overrides=(("image_size", 256),), max_steps=steps,
                                     batch_size=4, lr=2e-4, freeze=("text_encoder",), coarse_phrase_prob=0.5,
                                     checkpoint_every=10**6, device="cpu"))
    minutes = (time.time() - t0) / 60
    metrics, _, _ = evaluate_run(run, data, "test", run / "eval-test", phrases="case")
    o = metrics["overall"]
    return {"name": name, "source": source, "patients": k, "method": "scratch", "budget_minutes": args.budget_minutes,
            "steps": steps, "total_min": round(minutes, 1), "acc50": o["acc50"], "miou": o["miou"], "ap50": o["AP50"],
            "absent_fp": o["absent_fp_rate"]}


def record(log: Path, row: dict) -> None:
    """Print one measured run and append it to the log (the log is what ``--table`` and reruns read)."""
    print(json.dumps(row), flush=True)
    with log.open("a") as fh:
        fh.write(json.dumps(row) + "\n")


def backfill_val(log: Path, name: str, run: Path, data: Path) -> None:
    """Add the validation figures to a run measured before they were recorded (its row is rewritten)."""
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    row = next(r for r in rows if r["name"] == name)
    if "val_acc50" in row or row["method"] == "scratch" or not (run / "model.safetensors").is_file():
        return
    val, _, _ = evaluate_run(run, data, "val", run / "eval-val", phrases="case")
    row.update(val_acc50=val["overall"]["acc50"], val_miou=val["overall"]["miou"])
    print(json.dumps(row), flush=True)
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))


def val_forgetting(run: Path, reference: Path, base: Path) -> dict | None:
    """Forgetting on the reference's validation patients (where settings are chosen), when it has them."""
    if not (reference / "annotations" / "val.json").is_file():
        return None
    return forgetting_row(forgetting(run, reference, base=base, split="val"))


def forgetting_row(f: Forgetting) -> dict:
    """A forgetting measurement as the log records it."""
    return {"base": f.base_acc50, "adapted": f.adapted_acc50, "drop": f.drop, "by_phrase": f.by_phrase}


def table(rows: list[dict]) -> str:
    """The measured runs as markdown, one row per run (k = 0: the start model)."""
    # no absent-phrase false positives here: evaluate_run counts them at the start model's default
    # threshold, not at the adapted phrases' calibrated ones
    head = ["source", "patients", "method", "budget (min)", "steps", "val Acc@0.5", "Acc@0.5", "mIoU", "AP50",
            "forgetting (points)"]
    out = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for r in sorted(rows, key=lambda r: (r["source"], r["method"] != "none", r["method"], r["patients"],
                                         r.get("budget_minutes") or 0)):
        f = r.get("forgetting") or {}
        drop = f"{100 * f['drop']:.1f}" if f.get("drop") is not None else "–"
        out.append("| " + " | ".join([
            r["source"], str(r["patients"]), r["method"],
            f"{r['budget_minutes']:g}" if r.get("budget_minutes") else "–",
            str(r.get("steps", "–")), f"{100 * r['val_acc50']:.1f} %" if "val_acc50" in r else "–",
            f"{100 * r['acc50']:.1f} %", f"{100 * r['miou']:.1f} %",
            f"{100 * r['ap50']:.1f} %", drop]) + " |")
    return "\n".join(out) + "\n"


def forgetting_table(rows: list[dict], phrases: list[str]) -> str:
    """The runs with a validation forgetting figure as markdown: the new finding, then what each run forgot
    (points, on the reference's validation / test patients) and the named phrases' Acc@0.5 after."""
    head = ["run", "steps", "val Acc@0.5", "test Acc@0.5", "test mIoU", "test AP50", "forgetting val / test",
            *[f"{p} val / test" for p in phrases]]
    out = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]

    def pct(x: float | None) -> str:
        return "–" if x is None else f"{100 * x:.1f}"

    for r in rows:
        if "val_forgetting" not in r:
            continue
        fv, ft = r["val_forgetting"], r["forgetting"]
        cells = [f"{pct(fv['by_phrase'].get(p, (None, None))[1])} / {pct(ft['by_phrase'].get(p, (None, None))[1])}"
                 for p in phrases]
        out.append("| " + " | ".join([r["name"], str(r["steps"]), f"{pct(r['val_acc50'])} %", f"{pct(r['acc50'])} %",
                                      f"{pct(r['miou'])} %", f"{pct(r['ap50'])} %",
                                      f"{pct(fv['drop'])} / {pct(ft['drop'])}", *cells]) + " |")
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", type=Path, required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--reference", type=Path, required=True)
    ap.add_argument("--work", type=Path, default=REPO.parent / "runs" / "adapt-curves")
    ap.add_argument("--max-steps", type=int, help="stop each run after this many steps too (the same steps as a "
                    "run timed alone, so a run beside other work is not cut short)")
    ap.add_argument("--tag", help="a suffix of the run names (runs that differ only in --replay)")
    ap.add_argument("--replay", type=Path, help="the base's built training data, for the +replay methods")
    ap.add_argument("--norm-stats", default="update", help="adapt's norm_stats (name the runs with --tag)")
    ap.add_argument("--sources", default="msd_hippocampus,lgg_mri")
    ap.add_argument("--shots", default="1,3,5,10")
    ap.add_argument("--methods", default="head")
    ap.add_argument("--budget-minutes", type=float, default=3.0)
    ap.add_argument("--table", action="store_true", help="only print the runs measured so far as markdown")
    ap.add_argument("--forgetting-table", metavar="PHRASES", help="only print the runs with validation forgetting, "
                    "with these phrases' (comma-separated) Acc@0.5 after adapting")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    log = args.work / "adapt_curves.jsonl"
    if args.forgetting_table:
        rows = [json.loads(line) for line in log.read_text().splitlines()]
        print(forgetting_table(rows, args.forgetting_table.split(",")), end="")
        return
    if args.table:
        print(table([json.loads(line) for line in log.read_text().splitlines()]), end="")
        return
    done = {json.loads(line)["name"] for line in log.read_text().splitlines()} if log.exists() else set()
    for source in args.sources.split(","):
        name = f"{source}-0-base"  # the start model on the same test patients: the curve's k = 0
        if name not in done:
            data = few_shot_set(args.data, source, 1, args.work / "data" / f"{source}-1")
            metrics, _, _ = evaluate_run(args.base, data, "test", args.work / "runs" / name / "eval-test",
                                         phrases="case")
            o = metrics["overall"]
            row = {"name": name, "source": source, "patients": 0, "method": "none", "acc50": o["acc50"],
                   "miou": o["miou"], "ap50": o["AP50"], "absent_fp": o["absent_fp_rate"]}
            record(log, row)
        for k in (int(s) for s in args.shots.split(",")):
            data = few_shot_set(args.data, source, k, args.work / "data" / f"{source}-{k}")
            for method in args.methods.split(","):
                name = f"{source}-{k}-{method}-{args.budget_minutes:g}min" + (
                    f"-{args.max_steps}steps" if args.max_steps else "") + (f"-{args.tag}" if args.tag else "")
                if name in done:
                    backfill_val(log, name, args.work / "runs" / name, data)
                    continue
                run = args.work / "runs" / name
                if method == "scratch":
                    row = scratch(args, source, k, data, run, name, done)
                    record(log, row)
                    continue
                spec, _, rehearse = method.partition("+")
                kind, _, scale = spec.partition("@")
                if rehearse and args.replay is None:
                    raise SystemExit(f"{method}: give --replay (the base's built training data)")
                t0 = time.time()
                r = adapt(data, out=run, start=args.base, method=kind, budget_minutes=args.budget_minutes,
                          max_steps=args.max_steps,
                          replay=args.replay if rehearse else None, norm_stats=args.norm_stats,
                          **({"shared_lr_scale": float(scale)} if scale else {}))
                minutes = (time.time() - t0) / 60
                val, _, _ = evaluate_run(run, data, "val", run / "eval-val", phrases="case")
                metrics, _, _ = evaluate_run(run, data, "test", run / "eval-test", phrases="case")
                f = forgetting(run, args.reference, base=args.base)
                o = metrics["overall"]
                fv = val_forgetting(run, args.reference, args.base)
                row = {"name": name, "source": source, "patients": k, "method": method,
                       "budget_minutes": args.budget_minutes, "steps": r.steps, "train_s": round(r.seconds),
                       "total_min": round(minutes, 1), "train_cases": len(r.cases), "acc50": o["acc50"],
                       "miou": o["miou"], "ap50": o["AP50"], "absent_fp": o["absent_fp_rate"],
                       "val_acc50": val["overall"]["acc50"], "val_miou": val["overall"]["miou"],
                       "forgetting": forgetting_row(f),
                       **({"val_forgetting": fv} if fv else {}),
                       "weights_bytes": r.weights_bytes}
                record(log, row)


if __name__ == "__main__":
    main()
