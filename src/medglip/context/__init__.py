"""Grounded context: grounding results as numbered findings with sizes, sides and containers, ready
for a language model (text blocks, a numbered visual prompt, crops), a VQA answerer or a report.

>>> from medglip.context import context_from                                   # doctest: +SKIP
>>> res = grounder.ground_file("scan.dcm", ["brain tumor"])                      # doctest: +SKIP
>>> ctx = context_from(res); print(ctx.text_block("qwen"))                      # doctest: +SKIP
>>> ctx.visual_prompt(res.picture()).save("prompt.png")                        # doctest: +SKIP

One findings model: :func:`context_from` turns a grounding into numbered findings (``F1``, ``F2``, ...:
every box or object the grounder kept, in phrase order then by score, each with its size from its
mask else its box, its location in words and in mm); :func:`result_json` is a result's JSON with
those findings, the JSON the CLI, the service and the page read. Reports and VQA answers cite the
same ids.

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
    """:func:`context_from_result` or :func:`context_from_volume`, whichever ``result`` is (by default
    every box / object the grounder kept: the findings every surface shows)."""
    if isinstance(result, VolumeGroundingResult):
        ctx = context_from_volume(result, **kwargs)
    else:
        ctx = context_from_result(result, **kwargs)
    ctx.untrained = tuple(result.untrained)  # the model's own caution travels with its findings
    return ctx


def result_json(result: GroundingResult | VolumeGroundingResult, *, masks_as_rle: bool = True) -> dict[str, Any]:
    """``result.to_json()`` with ``findings``: the findings model of :func:`context_from` as JSON
    (``id``, ``phrase``, ``score``, ``size_mm``, ``size_source``, ``side``, ``slices``, ``location``,
    ``location_mm``, ...; :meth:`Finding.to_json`), what every surface renders."""
    out = result.to_json(masks_as_rle=masks_as_rle) if isinstance(result, GroundingResult) else result.to_json()
    out["findings"] = [f.to_json() for f in context_from(result).findings]
    return out


__all__ = [
    "Finding",
    "GroundedContext",
    "context_from",
    "context_from_result",
    "context_from_volume",
    "result_from_annotations",
    "result_json",
]
