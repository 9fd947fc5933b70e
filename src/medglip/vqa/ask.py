"""``ask``: one question about one image (or volume): parse → ground → context → answer.

Closed kinds are answered from the grounding alone (:func:`answer_question`); open questions go to a
language model with the numbered visual prompt, or come back unanswered with how to configure one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .answer import answer_question
from .llm import HOW_TO_CONFIGURE, ChatClient
from .parse import parse_question
from .question import Answer, Question

if TYPE_CHECKING:
    from ..context import GroundedContext

#: Volume file names (a folder is a DICOM series); such a file with one slice is grounded in 2D.
#: Boxes kept per phrase: a few for most kinds, more when the question counts them.
MAX_PER_PHRASE = 3
MAX_COUNT = 20

_BOX_REF = re.compile(r"\bbox(?:es)?\s+((?:\d+)(?:\s*(?:,|and|&)\s*\d+)*)", re.IGNORECASE)


@dataclass
class VQAResult:
    """A question, its answer and the grounded context the answer rests on."""

    question: Question
    answer: Answer
    context: "GroundedContext"

    def to_json(self) -> dict[str, Any]:
        return {"question": self.question.to_json(), "answer": self.answer.to_json(),
                "context": self.context.to_json()}


def cited_boxes(text: str, numbers: set[int]) -> list[int]:
    """Finding numbers a text cites ("box 2", "boxes 1, 3 and 4") that exist in ``numbers``."""
    out: list[int] = []
    for m in _BOX_REF.finditer(text):
        out += [int(n) for n in re.findall(r"\d+", m.group(1)) if int(n) in numbers and int(n) not in out]
    return out


def ask(grounder: Any, image: Any, question: str, *, modality: str | None = None, llm: ChatClient | None = None,
        score_threshold: float = 0.3, masks: bool = False) -> VQAResult:
    """Answer ``question`` about ``image``.

    Args:
        grounder: a :class:`medglip.infer.Grounder` (or an object with its ``ground`` /
            ``ground_volume`` methods).
        image: a path (2D file, or a volume: NIfTI / NRRD / MetaImage with more than one slice, or a
            DICOM series folder, grounded with ``ground_volume``), a numpy array or a PIL image.
        question: free text, e.g. "Is there a tumor in the left lung?".
        modality: CT / MR / XR / US / ENDO / DERM / PATH, when known.
        llm: answers ``open`` questions (with the numbered visual prompt); closed kinds never use it.
        score_threshold: boxes below it do not count as findings.
        masks: ask the grounder for masks (tinted on the visual prompt, mask areas in the context).

    Returns:
        :class:`VQAResult`. An open question without ``llm`` is answered ``via="unanswered"`` with
        a text saying how to configure an endpoint (nothing is raised).

    Raises:
        MedglipError: unparseable question, unreadable image; ``LLMError`` when the endpoint fails.
    """
    q = parse_question(question, modality=modality)
    k = MAX_COUNT if q.kind == "count" else MAX_PER_PHRASE
    from ..infer.preprocess import is_volume_input

    if is_volume_input(image):
        ctx, pixels = _ground_volume(grounder, image, q, modality, masks, score_threshold, k,
                                     need_pixels=llm is not None)
    else:
        ctx, pixels = _ground_2d(grounder, image, q, modality, masks, score_threshold, k)
    if q.kind != "open":
        return VQAResult(q, answer_question(q, ctx), ctx)
    if llm is None:
        text = ("This is an open question, which needs a language model: no LLM endpoint is configured; "
                f"{HOW_TO_CONFIGURE}.")
        return VQAResult(q, Answer(text, None, "open", [], "unanswered"), ctx)
    reply = llm.answer(q.text, ctx, ctx.visual_prompt(pixels, masks=masks))
    evidence = cited_boxes(reply, {f.number for f in ctx.findings})
    return VQAResult(q, Answer(reply, reply, "open", evidence, "llm"), ctx)


def _ground_2d(grounder: Any, image: Any, q: Question, modality: str | None, masks: bool, thr: float,
               k: int) -> tuple["GroundedContext", Any]:
    """Ground a 2D input; the display pixels are made only for open questions (the visual prompt)."""
    from ..context import context_from_result
    from ..infer.preprocess import to_display
    from ..infer.results import GroundingResult

    # the grounder gets the caller's input as is: any object with Grounder.ground's signature works
    display = to_display(image, modality=modality, window=getattr(grounder, "ct_window", None)) \
        if q.kind == "open" or not q.phrases else None
    if q.phrases:
        result = grounder.ground(image, list(q.phrases), modality=modality, masks=masks, score_threshold=thr)
    else:  # an open question naming nothing: the language model sees the bare image
        meta = {key: display.meta[key] for key in ("plane", "pixel_to_world") if key in display.meta}
        result = GroundingResult((), [], display.size, modality or display.modality or "unknown", "caller",
                                 display.source, meta)
    ctx = context_from_result(result, pixel_spacing=_file_spacing(image), score_threshold=thr, max_per_phrase=k)
    return ctx, None if display is None else display.pixels


def _file_spacing(image: Any) -> tuple[float, float] | None:
    """``(row_mm, col_mm)`` of a 2D DICOM file (PNG / JPEG have none; NIfTI slices carry it already)."""
    if not isinstance(image, (str, Path)):
        return None
    try:
        from ..io import read_image, sniff_format
        from ..io._base import to_2d

        if sniff_format(Path(image)) != "dicom":
            return None
        img = read_image(image)
        if img.geometry.ndim == 3:
            img = to_2d(img)
        if not getattr(img, "spacing_known", False):
            return None
        row, col = img.geometry.spacing[:2]
        return float(row), float(col)
    except Exception:  # noqa: BLE001 - sizes then stay in pixels; grounding already read the file
        return None


def _ground_volume(grounder: Any, path: Any, q: Question, modality: str | None, masks: bool, thr: float, k: int,
                   *, need_pixels: bool) -> tuple["GroundedContext", Any]:
    from ..build.orient import plan_slices
    from ..context import context_from_volume
    from ..infer.preprocess import load_volume, resolve_modality
    from ..infer.volume import VolumeGroundingResult, volume_slices

    if q.phrases:
        res = grounder.ground_volume(path, list(q.phrases), modality=modality, masks=masks, score_threshold=thr)
        vol = load_volume(path) if need_pixels else None
    else:
        vol = load_volume(path)
        plan = plan_slices(vol.geometry, vol.array.shape, "axial")
        code = resolve_modality(modality, vol.modality, lambda: "unknown")[0]
        res = VolumeGroundingResult((), [], "axial", plan.slice_axis, tuple(int(s) for s in vol.array.shape[:3]),
                                    vol.geometry, code, "caller", str(path))
    ctx = context_from_volume(res, score_threshold=thr, max_per_phrase=k)
    pixels = None
    if vol is not None:
        _, slices, _ = volume_slices(vol, res.modality, plane=res.plane, window=getattr(grounder, "ct_window", None))
        pixels = slices[int(ctx.volume["key_slice"])] if ctx.volume else slices[len(slices) // 2]
    return ctx, pixels
