"""``ask``: one question about one image (or volume): parse → ground → context → answer.

Closed kinds are answered from the grounding alone (:func:`answer_question`); open questions go to a
language model with the numbered visual prompt, or come back unanswered with how to configure one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from ..context import GroundedContext, context_from
from ..infer.api import GrounderLike
from ..infer.grounder import clean_phrases
from ..infer.inputs import InputImage, Volume, read_input, resolve_modality
from ..infer.masks import Masks
from ..infer.results import GroundingResult
from ..infer.volume import VolumeGroundingResult
from ..ontology import Ontology, load_ontology
from .answer import answer_question
from .llm import HOW_TO_CONFIGURE, ChatClient
from .parse import parse_question
from .question import Answer, Question

#: Findings a generated count question may have (question generation and VQA evaluation).
MAX_COUNT = 20

_BOX_REF = re.compile(r"\b(?:box(?:es)?\s+|findings?\s+)?(F?\d+(?:\s*(?:,|and|&)\s*F?\d+)*)", re.IGNORECASE)


@dataclass
class VQAResult:
    """A question, its answer, the grounded context the answer rests on, and the picture its boxes
    refer to (the image, or a volume's key slice ``slice_index``)."""

    question: Question
    answer: Answer
    context: GroundedContext
    pixels: np.ndarray | None = field(default=None, repr=False, compare=False)
    slice_index: int | None = None

    def visual_prompt(self, *, masks: bool = True) -> Image.Image:
        """The picture with every finding's numbered box (and tinted mask)."""
        if self.pixels is None:
            from ..errors import MedglipError

            raise MedglipError("this VQA result carries no picture")
        return self.context.visual_prompt(self.pixels, masks=masks, slice_index=self.slice_index)

    def to_json(self) -> dict[str, Any]:
        return {"question": self.question.to_json(), "answer": self.answer.to_json(), "context": self.context.to_json()}


def cited_boxes(text: str, numbers: set[int]) -> list[int]:
    """Finding numbers a text cites ("box 2", "boxes 1, 3 and 4", "F2", "boxes F1, F3") that exist in
    ``numbers``."""
    out: list[int] = []
    for m in _BOX_REF.finditer(text):
        if not m.group(0).lower().startswith(("box", "finding", "f")):
            continue  # a bare number ("3 cm") cites nothing
        out += [int(n) for n in re.findall(r"\d+", m.group(1)) if int(n) in numbers and int(n) not in out]
    return out


def ask(
    grounder: GrounderLike,
    image: Any,
    question: str,
    *,
    modality: str | None = None,
    llm: ChatClient | None = None,
    score_threshold: float | None = None,
    masks: Masks = False,
    ontology: Ontology | None = None,
    phrases: Sequence[str] | None = None,
) -> VQAResult:
    """Answer ``question`` about ``image``.

    Args:
        grounder: a :class:`~medglip.infer.api.GrounderLike` (its ``ground_file`` grounds the image).
        image: a path (2D file, or a volume: NIfTI / NRRD / MetaImage with more than one slice, or a
            DICOM series folder, grounded slice by slice), a numpy array, a PIL image, or an input
            already read (:func:`medglip.infer.inputs.read_input`).
        question: free text, e.g. "Is there a tumor in the left lung?".
        modality: CT / MR / XR / US / ENDO / DERM / PATH, when known.
        llm: answers ``open`` questions (with the numbered visual prompt); closed kinds never use it.
        score_threshold: boxes below it do not count as findings; None: the checkpoint's calibrated
            threshold of each phrase (``grounder.threshold_for``).
        masks: ask the grounder for masks (tinted on the visual prompt, mask areas in the context):
            True (the grounder's default source), ``"head"`` (the checkpoint's mask head) or ``"medsam"``.
        ontology: the ontology questions are linked to and findings described with (default: shipped).
        phrases: also ground these, first and in this order (the question's own phrases follow when
            they are not among them): pass the phrases of a ``ground`` call on the same image and the
            answer's ids (``F1``, ...) are those of that call's findings.

    The findings are every box the grounder keeps (its calibrated threshold of each phrase, no cap
    per phrase), the same findings model as ``ground``, reports and the service
    (:func:`medglip.context.context_from`).

    Returns:
        :class:`VQAResult` (with the picture its boxes refer to). An open question without ``llm``
        is answered ``via="unanswered"`` with a text saying how to configure an endpoint.

    Raises:
        MedglipError: unparseable question, unreadable image; ``LLMError`` when the endpoint fails.
    """
    onto = ontology or load_ontology()
    q = parse_question(question, modality=modality, ontology=onto)
    item = read_input(image)
    asked = list(dict.fromkeys([*(clean_phrases(phrases) if phrases else ()), *q.phrases]))
    if asked:
        result = grounder.ground_file(
            item,
            asked,
            modality=modality,
            masks=masks,
            score_threshold="calibrated" if score_threshold is None else score_threshold,
        )
    else:  # an open question naming nothing: the language model sees the bare image
        result = _empty_result(grounder, item, modality)
    ctx = context_from(result, ontology=onto)
    index = int(ctx.volume["key_slice"]) if ctx.volume else None
    pixels = result.picture(index) if isinstance(result, VolumeGroundingResult) else result.picture()
    if q.kind != "open":
        return VQAResult(q, answer_question(q, ctx), ctx, pixels, index)
    if llm is None:
        text = (
            "This is an open question, which needs a language model: no LLM endpoint is configured; "
            f"{HOW_TO_CONFIGURE}."
        )
        return VQAResult(q, Answer(text, None, "open", [], "unanswered"), ctx, pixels, index)
    reply = llm.answer(q.text, ctx, ctx.visual_prompt(pixels, masks=bool(masks), slice_index=index))
    evidence = cited_boxes(reply, {f.number for f in ctx.findings})
    return VQAResult(q, Answer(reply, reply, "open", evidence, "llm"), ctx, pixels, index)


def _empty_result(
    grounder: Any, item: InputImage | Volume, modality: str | None
) -> GroundingResult | VolumeGroundingResult:
    """A result without phrases (nothing to ground) that still carries the input's picture."""
    from ..core.orient import plan_slices
    from ..core.pipeline import model_pixels

    code = resolve_modality(modality, item.modality, lambda: "unknown")[0]
    cfg = grounder.input_config
    if isinstance(item, Volume):
        plan = plan_slices(item.geometry, item.array.shape, "axial")
        ni, nj, nk = (int(s) for s in item.array.shape[:3])
        return VolumeGroundingResult(
            (),
            [],
            "axial",
            plan.slice_axis,
            (ni, nj, nk),
            item.geometry,
            code,
            "caller",
            item.source,
            volume=item,
            plan=plan,
            input_config=cfg,
        )
    pixels, intensity = model_pixels(item.raw, code if code != "unknown" else None, cfg, what=item.source)
    meta: dict[str, Any] = {
        key: item.meta[key] for key in ("plane", "pixel_to_world", "pixel_spacing") if key in item.meta
    }
    return GroundingResult(
        (), [], item.size, code, "caller", item.source, {"intensity": intensity, **meta}, pixels=pixels, raw=item.raw
    )
