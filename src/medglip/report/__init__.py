"""Grounding reports: ground phrases in an image or volume, then describe each finding (side, part of
the image, containing structure, size in mm, slices) and each phrase not found, as sentences,
markdown with a numbered overlay, and JSON (docs/grounded_api.md).

>>> rep = make_report(grounder, "ct.nii.gz", ["liver", "liver tumor"])   # doctest: +SKIP
>>> write_report(rep, "out")                                             # doctest: +SKIP
"""

from .make import make_report
from .model import Report
from .write import write_report

__all__ = ["Report", "make_report", "write_report"]
