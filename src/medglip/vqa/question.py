"""The typed records of visual question answering: a parsed :class:`Question` and its :class:`Answer`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..context.finding import finding_id

#: What a question can ask. Every kind but ``open`` is answered from the grounding alone.
QUESTION_KINDS: tuple[str, ...] = (
    "presence",
    "laterality",
    "location",
    "count",
    "size",
    "containment",
    "comparison",
    "open",
)

#: The kinds :func:`medglip.vqa.answer_question` answers without a language model.
CLOSED_KINDS: tuple[str, ...] = tuple(k for k in QUESTION_KINDS if k != "open")

#: How an answer was reached.
VIA: tuple[str, ...] = ("grounding", "llm", "unanswered")


@dataclass(frozen=True)
class Question:
    """A question linked to the ontology.

    Attributes:
        text: the question as asked.
        kind: one of :data:`QUESTION_KINDS`.
        phrases: what to ground (targets, then the container, then other candidates), ontology phrases.
        targets: what the answer is about (one phrase; two for ``comparison``).
        container: the structure the target is asked about "in" ("in the left lung" → "left lung").
        side: the patient side asked about (``left`` / ``right`` / ``bilateral``), else None.
    """

    text: str
    kind: str
    phrases: tuple[str, ...]
    targets: tuple[str, ...]
    container: str | None = None
    side: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "kind": self.kind,
            "phrases": list(self.phrases),
            "targets": list(self.targets),
            "container": self.container,
            "side": self.side,
        }


@dataclass
class Answer:
    """The answer to one question.

    Attributes:
        text: a sentence for people, citing the boxes it rests on ("box 2").
        value: the machine-readable answer; its type depends on ``kind``: presence ``bool``,
            laterality ``str`` (left / right / midline / bilateral) or None, location ``str`` or None,
            count ``int``, size ``float`` (mm, or px when ``unit`` is ``"px"``) or None, containment
            ``str`` or None, comparison ``str`` (the larger phrase) or None, open ``str`` or None.
        kind: the question's kind.
        evidence: the finding numbers (boxes of the visual prompt) the answer rests on; ``to_json``
            also gives their ids (``evidence_ids``: ``"F<number>"``, as in every surface's findings).
        via: ``grounding`` (closed kinds), ``llm`` (a language model answered) or ``unanswered``.
        unit: ``"mm"`` or ``"px"`` for sizes, else None (an addition to the contract).
        notes: caveats behind the answer ("no pixel spacing", "container not found").
    """

    text: str
    value: bool | int | float | str | None
    kind: str
    evidence: list[int] = field(default_factory=list)
    via: str = "grounding"
    unit: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "text": self.text,
            "value": self.value,
            "kind": self.kind,
            "evidence": list(self.evidence),
            "evidence_ids": [finding_id(n) for n in self.evidence],
            "via": self.via,
        }
        if self.unit is not None:
            out["unit"] = self.unit
        if self.notes:
            out["notes"] = list(self.notes)
        return out
