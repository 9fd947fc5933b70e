"""Visual question answering on grounded images: questions linked to the ontology, answered from the
grounding (presence, side, location, count, size, containment, comparison) or, for open questions,
by an OpenAI-compatible language model shown the numbered boxes.

>>> from medglip.vqa import ask, parse_question                                  # doctest: +SKIP
>>> parse_question("Is there a tumor in the left lung?").phrases                 # doctest: +SKIP
('lung tumor', 'left lung')
>>> ask(grounder, "ct.dcm", "How many kidney stones are visible?").answer.text  # doctest: +SKIP

The contract is docs/grounded_api.md. Additions to it: ``parse_question(..., modality=)``,
``Answer.unit`` / ``Answer.notes``, ``LLMError``, ``ChatClient(temperature=, max_tokens=)``,
``QAItem.to_json``, ``evaluate_vqa(..., seed=, out=)``, ``is_correct``, ``write_vqa_metrics``,
``CLOSED_KINDS``.
"""

from .answer import answer_question
from .ask import VQAResult, ask
from .evaluate import evaluate_vqa, is_correct, write_vqa_metrics
from .generate import QAItem, generate_questions
from .llm import ChatClient, LLMError, LLMNotConfigured
from .parse import parse_question
from .question import CLOSED_KINDS, QUESTION_KINDS, Answer, Question

__all__ = [
    "CLOSED_KINDS",
    "QUESTION_KINDS",
    "Answer",
    "ChatClient",
    "LLMError",
    "LLMNotConfigured",
    "QAItem",
    "Question",
    "VQAResult",
    "answer_question",
    "ask",
    "evaluate_vqa",
    "generate_questions",
    "is_correct",
    "parse_question",
    "write_vqa_metrics",
]
