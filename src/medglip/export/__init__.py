"""Grounding results as files clinical tools open (issue 13).

- volumes: ``labels.nii.gz`` (one uint16 label per object on exactly the input's grid) with
  ``labels.json`` (each label's phrase, score, colour, ontology hierarchy, codes, size, volume,
  centre); for DICOM input also ``seg.dcm`` (DICOM-SEG referencing the source series, one segment per
  object, coded from the ontology) and ``sr.dcm`` (TID 1500 measurement report: what, where, the
  segment, volume / size / score); ``volume.nii.gz`` (the input as NIfTI, for viewers) on request;
- 2D images: ``masks.png`` (label image) with ``labels.json``, and ``seg.dcm`` for a DICOM file.

Everything is made in memory first (:class:`ExportBundle`) and written in one step, so a failure
leaves the output folder as it was.

>>> res = grounder.ground_file("series/", ["brain tumor"], masks=True)   # doctest: +SKIP
>>> export_result(res).write("out/")                                      # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..infer.volume import VolumeGroundingResult
from ..ontology import Ontology
from .bundle import ExportBundle
from .image import export_image, image_objects
from .options import FILES, OUTPUTS, ExportOptions, parse_outputs
from .volume import export_volume


def export_result(
    result: Any,
    *,
    indices: Sequence[int] | None = None,
    options: ExportOptions = ExportOptions(),
    ontology: Ontology | None = None,
) -> ExportBundle:
    """:func:`export_volume` or :func:`export_image`, whichever ``result`` is."""
    if isinstance(result, VolumeGroundingResult):
        return export_volume(result, indices=indices, options=options, ontology=ontology)
    return export_image(result, indices=indices, options=options, ontology=ontology)


__all__ = [
    "ExportBundle",
    "ExportOptions",
    "FILES",
    "OUTPUTS",
    "export_image",
    "export_result",
    "export_volume",
    "image_objects",
    "parse_outputs",
]
