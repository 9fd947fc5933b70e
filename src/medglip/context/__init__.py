"""Grounded context: grounding results as numbered findings with sizes, sides and containers, ready
for a language model (text blocks, a numbered visual prompt, crops), a VQA answerer or a report.

>>> from medglip.context import context_from_result                       # doctest: +SKIP
>>> ctx = context_from_result(grounder.ground("scan.dcm", ["brain tumor"]))  # doctest: +SKIP
>>> print(ctx.text_block("qwen")); ctx.visual_prompt(pixels).save("prompt.png")  # doctest: +SKIP

The contract is docs/grounded_api.md. Additions to it: ``Finding.mask`` (the box's mask, for drawing;
not compared, not in ``to_json``), ``Finding.centre`` / ``n_slices`` / ``on_slice``,
``GroundedContext.finding(number)`` / ``is_volume``, ``volume["slice_axis"]`` and the ``slice_index``
keyword of ``visual_prompt`` / ``crops``.
"""

from .annotations import result_from_annotations
from .finding import Finding
from .findings import context_from_result
from .grounded import GroundedContext
from .volume import context_from_volume

__all__ = ["Finding", "GroundedContext", "context_from_result", "context_from_volume", "result_from_annotations"]
