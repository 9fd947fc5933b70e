"""Grounded context: grounding results as numbered findings with sizes, sides and containers, ready
for a language model (text blocks, a numbered visual prompt, crops), a VQA answerer or a report.

>>> from medglip.context import context_from                                   # doctest: +SKIP
>>> res = grounder.ground_file("scan.dcm", ["brain tumor"])                      # doctest: +SKIP
>>> ctx = context_from(res); print(ctx.text_block("qwen"))                      # doctest: +SKIP
>>> ctx.visual_prompt(res.picture()).save("prompt.png")                        # doctest: +SKIP

The contract is docs/grounded_api.md. Additions to it: ``Finding.mask`` (the box's mask, for drawing;
not compared, not in ``to_json``), ``Finding.centre`` / ``n_slices`` / ``on_slice``,
``GroundedContext.finding(number)`` / ``is_volume`` / ``ontology``, ``volume["slice_axis"]`` and the
``slice_index`` keyword of ``visual_prompt`` / ``crops``.
"""

from __future__ import annotations

from typing import Any

from ..infer.results import GroundingResult
from ..infer.volume import VolumeGroundingResult
from .finding import Finding
from .from_annotations import result_from_annotations
from .from_image import context_from_result
from .from_volume import context_from_volume
from .grounded import GroundedContext


def context_from(result: GroundingResult | VolumeGroundingResult, **kwargs: Any) -> GroundedContext:
    """:func:`context_from_result` or :func:`context_from_volume`, whichever ``result`` is."""
    if isinstance(result, VolumeGroundingResult):
        ctx = context_from_volume(result, **kwargs)
    else:
        ctx = context_from_result(result, **kwargs)
    ctx.untrained = tuple(result.untrained)  # the model's own caution travels with its findings
    return ctx


__all__ = ["Finding", "GroundedContext", "context_from", "context_from_result", "context_from_volume",
           "result_from_annotations"]
