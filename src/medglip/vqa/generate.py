"""Closed questions with known answers, generated from the ground truth of a built dataset split.

Per image, for each ground-truth phrase (docs/dataset_format.md) the generator asks:

- presence ("Is there a brain tumor in this image?") → True;
- laterality ("Which side is the brain tumor on?") → the patient side of the ground-truth boxes as
  the context code measures it (``Finding.side`` of the GT context, :func:`side_of`), only when it is
  well defined: ``left`` / ``right`` / ``bilateral`` (not midline, not on images without patient
  orientation) and the phrase does not name its side already ("left kidney");
- location ("Where is the brain tumor?") → the vertical third (upper / middle / lower) of the
  annotation boxes' centres, when all its boxes lie in the same third;
- count ("How many brain tumor findings are visible?") → the number of annotations (connected
  components), when at most :data:`MAX_COUNT`;
- size ("How large is the brain tumor?") → the longest side of its one annotation box in mm (images
  with pixel spacing and one annotation of the phrase); a predicted size within ±20 % or ±3 mm counts;

and presence questions for absent phrases (→ False): up to :data:`MAX_ABSENT` dataset phrases not on
the image, those annotated elsewhere in the same case first (the hardest: the same tumour on other
slices), then others drawn with ``seed``. Negative images get only these. Phrases implied by a present
one are not asked as absent (the same label with and without a side, an ontology ancestor, the generic term
of the same kind: "kidney" next to "left kidney", "liver" or "tumor" next to "liver tumor").

Only the side goes through the context code; counts, thirds and sizes come from the raw
annotations, so the ground-truth ceiling of :func:`medglip.vqa.evaluate_vqa` checks that the
answering code agrees with the dataset's own numbers. Every question is parsed back with
:func:`parse_question`; a question that does not parse to its kind and phrase (an unmapped label)
is left out.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..context import context_from_result, result_from_annotations
from ..core.rules import FINDING_THRESHOLD, vertical_third
from ..errors import MedglipError
from ..ontology import Ontology, load_ontology
from .answer import side_of
from .ask import MAX_COUNT
from .parse import parse_question

log = logging.getLogger(__name__)

#: Presence-"no" questions per image.
MAX_ABSENT = 3
#: A predicted size is right within this relative or absolute (mm) tolerance of the ground truth.
SIZE_REL_TOL = 0.20
SIZE_ABS_TOL_MM = 3.0

TEMPLATES = {
    "presence": "Is there a {p} in this image?",
    "laterality": "Which side is the {p} on?",
    "location": "Where is the {p}?",
    "count": "How many {p} findings are visible?",
    "size": "How large is the {p}?",
}


@dataclass(frozen=True)
class QAItem:
    """One generated question and its ground-truth answer."""

    image_id: int
    file_name: str
    question: str
    kind: str
    answer: bool | int | float | str
    phrase: str

    def to_json(self) -> dict[str, Any]:
        return {
            "image_id": self.image_id,
            "file_name": self.file_name,
            "question": self.question,
            "kind": self.kind,
            "answer": self.answer,
            "phrase": self.phrase,
        }


def size_ok(predicted: Any, expected: float) -> bool:
    """A predicted size (mm) within ±20 % or ±3 mm of the expected one."""
    if predicted is None or isinstance(predicted, bool):
        return False
    return abs(float(predicted) - float(expected)) <= max(SIZE_REL_TOL * float(expected), SIZE_ABS_TOL_MM)


def load_split(dataset_dir: str | Path, split: str) -> tuple[dict, dict[int, list[dict]], dict[int, dict]]:
    """The split's COCO dict, annotations by image id, categories by id."""
    from ..evaluate.run import read_split

    coco = read_split(dataset_dir, split)
    by_image: dict[int, list[dict]] = defaultdict(list)
    for ann in coco["annotations"]:
        by_image[int(ann["image_id"])].append(ann)
    return coco, by_image, {int(c["id"]): c for c in coco["categories"]}


def phrase_of(ann: dict, categories: dict[int, dict]) -> str:
    return str(ann.get("phrase") or categories[int(ann["category_id"])]["name"])


def generate_questions(
    dataset_dir: str | Path, *, split: str = "test", seed: int = 0, ontology: Ontology | None = None
) -> list[QAItem]:
    """Questions with ground-truth answers for every image of ``split`` (see the module docstring).

    Raises:
        MedglipError: no such split file (``EvaluationError``), an unreadable image.
    """
    onto = ontology or load_ontology()
    coco, by_image, cats = load_split(dataset_dir, split)
    rng = np.random.default_rng(seed)
    all_phrases = sorted({str(c["name"]) for c in coco["categories"]})
    in_case: dict[tuple, set[str]] = defaultdict(set)
    for img in coco["images"]:
        in_case[(img.get("source"), img.get("case_id"))] |= {phrase_of(a, cats) for a in by_image[int(img["id"])]}
    items: list[QAItem] = []
    skipped: set[tuple[str, str]] = set()

    def add(img: dict, kind: str, phrase: str, answer: Any) -> None:
        text = TEMPLATES[kind].format(p=phrase)
        try:
            q = parse_question(text, ontology=onto, modality=img.get("modality"))
        except MedglipError:
            q = None
        if q is None or q.kind != kind or q.targets != (phrase,):
            skipped.add((kind, phrase))
            return
        items.append(QAItem(int(img["id"]), str(img["file_name"]), text, kind, answer, phrase))

    for img in sorted(coco["images"], key=lambda r: int(r["id"])):
        anns = by_image[int(img["id"])]
        per_phrase: dict[str, list[dict]] = defaultdict(list)
        for a in anns:
            per_phrase[phrase_of(a, cats)].append(a)
        ctx = None
        if anns:
            gt = result_from_annotations(img, anns, cats, pixels=_pixels(Path(dataset_dir), img))
            ctx = context_from_result(
                gt, score_threshold=FINDING_THRESHOLD, max_per_phrase=MAX_COUNT, source="ground truth", ontology=onto
            )
        h = int(img["height"])
        spacing = img.get("pixel_spacing")
        for phrase, group in per_phrase.items():
            add(img, "presence", phrase, True)
            side = side_of(ctx.for_phrase(phrase)) if ctx is not None else None
            if side in ("left", "right", "bilateral") and onto.resolve(phrase).laterality is None:
                add(img, "laterality", phrase, side)
            thirds = {vertical_third(a["bbox"][1] + a["bbox"][3] / 2.0, h) for a in group}
            if len(thirds) == 1:
                add(img, "location", phrase, thirds.pop())
            if len(group) <= MAX_COUNT:
                add(img, "count", phrase, len(group))
            if spacing is not None and len(group) == 1:
                _, _, bw, bh = group[0]["bbox"]
                add(img, "size", phrase, round(max(bw * float(spacing[1]), bh * float(spacing[0])), 2))
        present = set(per_phrase)
        candidates = [p for p in all_phrases if not _implied(onto, p, present)]
        for phrase in _absent_phrases(
            present, in_case[(img.get("source"), img.get("case_id"))] & set(candidates), candidates, rng
        ):
            add(img, "presence", phrase, False)
    if skipped:
        log.info(
            "left out %d questions that do not parse back to their phrase (e.g. %s)", len(skipped), sorted(skipped)[:3]
        )
    return items


def _pixels(dataset_dir: Path, record: dict) -> np.ndarray:
    """The built image's pixels (its PNG is the model's pixels; sides are measured on it)."""
    from ..errors import ReadError

    path = dataset_dir / "images" / str(record["file_name"])
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB") if im.mode not in ("L", "RGB") else im)
    except (OSError, ValueError) as exc:
        raise ReadError(path, f"cannot read image {record.get('id')}: {exc}") from exc


def _implied(onto: Any, phrase: str, present: set[str]) -> bool:
    """True when a present phrase makes ``phrase`` there too, though not annotated as such (see the
    module docstring): asking "Is there a kidney?" next to a "left kidney" would expect a wrong "no"."""
    res = onto.resolve(phrase)
    if not res.mapped:
        return False
    term = onto.term(res.term_id)
    for other in present:
        o = onto.resolve(other)
        if not o.mapped:
            continue
        if o.label == res.label and None in (o.laterality, res.laterality):  # "kidney" / "left kidney"
            return True
        if res.term_id in {t.id for t in onto.ancestors(o.term_id)[1:]}:
            return True
        if term.generic and (
            set(term.kinds) & set(onto.term(o.term_id).kinds)  # "tumor" / "liver tumor"
            or ("lesion" in term.kinds and o.level == "lesion")
        ):  # "lesion" / any finding
            return True
    return False


def _absent_phrases(present: set[str], case: set[str], everything: list[str], rng: np.random.Generator) -> list[str]:
    same_case = sorted(case - present)[:MAX_ABSENT]
    rest = [p for p in everything if p not in present and p not in same_case]
    room = MAX_ABSENT - len(same_case)
    if room > 0 and rest:
        picks = rng.choice(len(rest), size=min(room, len(rest)), replace=False)
        same_case += [rest[i] for i in sorted(picks)]
    return same_case
