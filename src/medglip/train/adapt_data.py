"""The labelled set of ``medglip adapt``: a built dataset, or any layout / manifest built into ``OUT/data``,
checked for what adaptation needs (labelled cases, the phrases asked for, a declared modality)."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..core.text import clean_phrase, phrase_key
from ..dataset import BuildConfig, build
from ..errors import MedglipError
from ..modality import normalise_modality

log = logging.getLogger(__name__)

#: train / val / test shares of a set built for adaptation: no test split (the shipped test patients
#: measure forgetting), a validation part for the thresholds when there are enough cases
ADAPT_SPLITS = (0.8, 0.2, 0.0)


class AdaptDataError(MedglipError):
    """The labelled set cannot adapt a model: no labelled case, a phrase it never marks, no modality."""


@dataclass(frozen=True)
class AdaptData:
    """A labelled set ready for adaptation.

    Attributes:
        dataset: the built dataset folder; built: whether ``adapt`` built it (into ``OUT/data``).
        phrases: the phrases to adapt (asked for, else every phrase the training cases mark).
        marked: every phrase the training cases mark.
        modalities: the modalities of the training images.
        cases: ``source/case_id`` of the training cases; val_cases: those of the validation split.
        patients: the patients of the training cases (a case is its own patient when none is recorded).
        train_images, train_boxes: images and annotations of the training split.
        calibration_split: ``val`` when it holds a labelled image, else ``train`` (said in the card).
    """

    dataset: Path
    built: bool
    phrases: tuple[str, ...]
    marked: tuple[str, ...]
    modalities: tuple[str, ...]
    cases: tuple[str, ...]
    val_cases: tuple[str, ...]
    patients: tuple[str, ...]
    train_images: int
    train_boxes: int
    calibration_split: str


def is_built(folder: Path) -> bool:
    """Whether ``folder`` is a dataset written by ``medglip build`` (it has ``annotations/train.json``)."""
    return (folder / "annotations" / "train.json").is_file()


def _manifest_without_modality(source: Path) -> bool:
    """A medglip manifest that names no modality for some case (the manifest reader would take CT)."""
    from ..sources import detect_layout
    from ..sources.manifest import find_manifest

    try:
        if detect_layout(source) != "manifest":
            return False
        path = find_manifest(source)
        doc = json.loads(path.read_text(encoding="utf-8")) if path is not None else {}
    except (MedglipError, OSError, ValueError):
        return False  # the build names what is wrong with it
    if not isinstance(doc, dict) or doc.get("modality"):
        return False
    return any(isinstance(c, dict) and not c.get("modality") for c in doc.get("cases") or [])


def _coco(dataset: Path, split: str) -> dict:
    path = dataset / "annotations" / f"{split}.json"
    if not path.is_file():
        return {"images": [], "annotations": [], "categories": []}
    return json.loads(path.read_text(encoding="utf-8"))


def _case_of(image: dict) -> str:
    return f"{image.get('source')}/{image.get('case_id')}"


def _patients(dataset: Path, images: list[dict]) -> tuple[str, ...]:
    out = set()
    for im in images:
        key = _case_of(im)
        rec = dataset / "records" / f"{key}.json"
        patient = None
        if rec.is_file():
            try:
                patient = json.loads(rec.read_text(encoding="utf-8")).get("patient")
            except (OSError, ValueError):
                patient = None
        out.add(f"{im.get('source')}/patient/{patient}" if patient else key)
    return tuple(sorted(out))


def prepare(
    data: str | Path,
    out: Path,
    *,
    modality: str | None,
    model_modalities: Sequence[str],
    phrases: Sequence[str] | None,
    seed: int = 0,
) -> AdaptData:
    """The labelled set of ``data`` (built into ``out/data`` unless it is built already), checked.

    Raises:
        AdaptDataError: no labelled case; a modality the data does not declare (or the model does not
            know, or another than ``modality``); a requested phrase the training cases never mark.
    """
    data = Path(data)
    if not data.exists():
        raise AdaptDataError(f"{data}: no such file or folder")
    wanted = normalise_modality(modality) if modality else None
    if is_built(data):
        dataset, built = data, False
    else:
        if wanted is None and _manifest_without_modality(data):
            raise AdaptDataError(
                f"{data}: the manifest does not say the modality of its cases (no 'modality' at its "
                "top level or in every case): add it, or pass modality= (--modality)"
            )
        dataset, built = out / "data", True
        result = build(BuildConfig(source=str(data), modality=wanted, split_ratios=ADAPT_SPLITS, seed=seed), dataset)
        if result.failed and not result.done and not result.skipped:
            reasons = "; ".join(f"{k}: {v}" for k, v in sorted(result.failed.items())[:3])
            raise AdaptDataError(f"{data}: no case could be built ({reasons})")
    train = _coco(dataset, "train")
    images = [im for im in train["images"] if im.get("id") is not None]
    labelled_ids = {int(a["image_id"]) for a in train["annotations"]}
    if not labelled_ids:
        raise AdaptDataError(
            f"{data}: no labelled case (the training split of {dataset} has no box or mask); "
            "adaptation needs images with masks or boxes of the phrases to learn"
        )
    mods = sorted({str(im.get("modality") or "") for im in images})
    if "" in mods:
        raise AdaptDataError(
            f"{data}: some images have no modality (the data does not say it): pass modality= (--modality)"
        )
    unknown = sorted(set(mods) - set(model_modalities))
    if unknown:
        raise AdaptDataError(
            f"{data}: modality {unknown} is not one the model has an image encoder for ({', '.join(model_modalities)})"
        )
    if wanted is not None and mods != [wanted]:
        raise AdaptDataError(f"{data}: its images are {', '.join(mods)}, not {wanted} as asked (modality=)")
    names = {int(c["id"]): str(c["name"]) for c in train["categories"]}
    marked = tuple(sorted({names[int(a["category_id"])] for a in train["annotations"]}))
    by_key = {phrase_key(p): p for p in marked}
    if phrases:
        missing = [p for p in phrases if phrase_key(p) not in by_key]
        if missing:
            never = ", ".join(repr(clean_phrase(p)) for p in missing)
            raise AdaptDataError(f"{data}: the training cases never mark {never} (they mark: {', '.join(marked)})")
        chosen = tuple(dict.fromkeys(by_key[phrase_key(p)] for p in phrases))
    else:
        chosen = marked
    val = _coco(dataset, "val")
    val_labelled = bool(val["annotations"])
    return AdaptData(
        dataset=dataset,
        built=built,
        phrases=chosen,
        marked=marked,
        modalities=tuple(mods),
        cases=tuple(sorted({_case_of(im) for im in images})),
        val_cases=tuple(sorted({_case_of(im) for im in val["images"]})),
        patients=_patients(dataset, images),
        train_images=len(images),
        train_boxes=len(train["annotations"]),
        calibration_split="val" if val_labelled else "train",
    )
