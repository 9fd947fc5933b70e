"""Which CT input transfers best to a raw HU volume? (the shipped model's CT input, measured)

CT reaches medglip in three forms: HU volumes (pyradiomics lung1, lung2), 8-bit windowed pictures
(COVID-19 CT, MSD lung slices) and standardised arrays (LIDC). Three ways to feed them to the model:

- ``three_windows`` (the shipped choice, input pipeline 3): every form mapped back to HU, then the
  lung, soft-tissue and bone windows as the three channels.
- ``lung_window``: every form mapped back to HU, then one lung window as a grey picture.
- ``as_they_come`` (input pipeline 2): pictures and standardised arrays taken as they are; only HU
  volumes go through the three windows.

For each choice the same CT sources (recipes/medglip-v1.yaml's CT sources, same patient split, plus
pyradiomics lung1) are built, the same model is trained for the same steps from the same packages'
weights, and measured on each source's test patients and on lung2, the never-trained raw HU volume
(Acc@0.5, mIoU, AP50: threshold-free, so no calibration enters the comparison).

    python benchmarks/ct_input_choice.py --work ../runs/ct-choice --steps 400

Every stage resumes (datasets case by case, training from its last checkpoint; a finished training or
measurement is kept). Needs ../shared/data and the pyradiomics cases that recipes/train_medglip_v1.sh
fetches (``--pyradiomics``).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from medglip.core.intensity import CT_WINDOWS
from medglip.dataset import BuildConfig, build
from medglip.dataset.recipe import load_recipe
from medglip.train import TrainConfig, train

REPO = Path(__file__).resolve().parents[1]
CT_SOURCES = ("covid_ct", "msd_lung_slices", "lidc_nodules")
#: choice → (input pipeline version, the three channel windows)
CHOICES: dict[str, tuple[int, tuple[tuple[float, float], ...]]] = {
    "three_windows": (3, (CT_WINDOWS["lung"], CT_WINDOWS["soft_tissue"], CT_WINDOWS["bone"])),
    "lung_window": (3, (CT_WINDOWS["lung"],) * 3),
    "as_they_come": (2, (CT_WINDOWS["lung"], CT_WINDOWS["soft_tissue"], CT_WINDOWS["bone"])),
}


def one_case_folder(src: Path, dst: Path, case_id: str) -> Path:
    """A manifest folder holding only ``case_id`` of the pyradiomics manifest in ``src``."""
    manifest = json.loads((src / "medglip_manifest.json").read_text())
    case = next(c for c in manifest["cases"] if c["id"] == case_id)
    dst.mkdir(parents=True, exist_ok=True)
    for key in ("image", "label"):
        if not (dst / case[key]).exists():
            shutil.copyfile(src / case[key], dst / case[key])
    (dst / "medglip_manifest.json").write_text(json.dumps({**manifest, "cases": [case]}, indent=1))
    return dst


def medglip(*args: str) -> None:
    print("+ medglip", " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "medglip", *args], check=True)


def run_choice(name: str, work: Path, lung1: Path, lung2: Path, steps: int) -> dict:
    version, windows = CHOICES[name]
    root = work / name
    recipe = load_recipe(REPO / "recipes" / "medglip-v1.yaml")
    sources = [s for s in recipe.sources if s.id in CT_SOURCES]
    sources.append(dataclasses.replace(next(s for s in recipe.sources if s.id == "pyradiomics"), path=str(lung1)))
    settings = dataclasses.replace(recipe.settings, ct_windows=windows, input_version=version)
    recipe = dataclasses.replace(recipe, name=f"ct-{name}", sources=tuple(sources), settings=settings)
    data, run, held = root / "data", root / "run", root / "heldout-data"
    t0 = time.time()
    build(recipe, data, workers=2)
    build(BuildConfig(source=str(lung2), ct_windows=windows, input_version=version, split_ratios=(0.0, 0.0, 1.0)),
              held, workers=1)
    # The model takes the choice's input (its CT windows and pipeline version), which `medglip train` leaves
    # at the preset's; everything else is `medglip train --preset default --image-size 256 --batch-size 8
    # --lr 2e-4 --freeze text_encoder --coarse-phrases 0.5 --checkpoint-every 100`.
    config = TrainConfig(preset="default", max_steps=steps, batch_size=8, lr=2e-4, checkpoint_every=100,
                         coarse_phrase_prob=0.5, freeze=("text_encoder",), device="cpu",
                         model_overrides=(("image_size", 256), ("ct_windows", windows), ("input_version", version)))
    if not (run / "model.safetensors").is_file():  # a finished run is kept; an interrupted one resumes
        train(data, run, config, resume=(run / "checkpoints").is_dir())
    minutes = (time.time() - t0) / 60
    if not (root / "test" / "sources.json").is_file():
        medglip("source-report", str(data), "--checkpoint", str(run), "--out", str(root / "test"), "--masks", "none")
    if not (root / "lung2" / "heldout.json").is_file():
        medglip("heldout", str(held), "--checkpoint", str(run), "--out", str(root / "lung2"), "--masks", "none")
    return {"choice": name, "pipeline_version": version, "windows": [list(w) for w in windows],
            "steps": steps, "minutes": round(minutes, 1),
            "test": json.loads((root / "test" / "sources.json").read_text()),
            "lung2": json.loads((root / "lung2" / "heldout.json").read_text())}


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f} %"


def table(results: list[dict]) -> str:
    """One row per choice: Acc@0.5 / mIoU / AP50 on each CT source's test patients and on lung2."""
    sources = sorted({s["source"] for r in results for s in r["test"]["sources"]})
    head = ["choice"] + [f"{s} Acc@0.5 / mIoU / AP50" for s in sources] + ["lung2 Acc@0.5 / mIoU / AP50"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for r in results:
        by = {s["source"]: s["overall"] for s in r["test"]["sources"]}
        cells = [r["choice"]]
        for s in sources:
            o = by.get(s)
            cells.append("–" if o is None else " / ".join(_pct(o[k]) for k in ("acc50", "miou", "AP50")))
        lung2 = r["lung2"]["patients"][0]["overall"]
        cells.append(" / ".join(_pct(lung2[k]) for k in ("acc50", "miou", "AP50")))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=REPO.parent / "runs" / "ct-choice")
    ap.add_argument("--pyradiomics", type=Path, default=REPO.parent / "runs" / "pyradiomics")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--choices", default=",".join(CHOICES))
    ap.add_argument("--table-only", action="store_true", help="only write the table of the choices measured so far")
    args = ap.parse_args()
    for choice in [] if args.table_only else args.choices.split(","):
        lung1 = one_case_folder(args.pyradiomics, args.work / "lung1", "lung1")
        lung2 = one_case_folder(args.pyradiomics, args.work / "lung2", "lung2")
        result = run_choice(choice, args.work, lung1, lung2, args.steps)
        (args.work / choice / "result.json").write_text(json.dumps(result, indent=1))
    # every choice measured so far, whichever invocation measured it
    results = [json.loads((args.work / c / "result.json").read_text()) for c in CHOICES
               if (args.work / c / "result.json").is_file()]
    (args.work / "ct_input_choice.json").write_text(json.dumps(results, indent=1))
    (args.work / "ct_input_choice.md").write_text(table(results))
    print(table(results))


if __name__ == "__main__":
    main()
