"""``Finding``: one grounded box with what a reader (or a language model) needs to talk about it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

Box = tuple[float, float, float, float]


def as_box(values: Any) -> Box:
    """The xyxy floats of a 4-value box (an array row, a list)."""
    x0, y0, x1, y1 = (float(v) for v in np.asarray(values).reshape(4))
    return x0, y0, x1, y1


def finding_id(number: int) -> str:
    """The id of finding ``number`` on every surface: ``"F<number>"``."""
    return f"F{int(number)}"


def _r(v: float | None, nd: int = 2) -> float | None:
    return None if v is None else round(float(v), nd)


def _rt(values: Any, nd: int = 2) -> list | None:
    return None if values is None else [round(float(v), nd) for v in values]


@dataclass(frozen=True)
class Finding:
    """One box of one phrase (2D) or one linked 3D object (volumes), numbered for the visual prompt.

    Attributes are those of docs/grounded_api.md; in short: ``box`` is xyxy pixel edges in the
    original image (volumes: the object's box on ``key_slice``); ``size_px`` / ``size_mm`` are
    ``(width, height)`` (volumes: ``size_mm`` is the LPS ``x, y, z`` extent, as ``extent_mm``), measured
    on the mask when there is one, else on the box (``size_source``: ``"mask"`` / ``"box"``,
    :mod:`medglip.context.size`); ``location_mm`` is the LPS mm of the centre when the geometry is
    known; ``id`` (``"F<number>"``) is how every surface names the finding; ``side`` is the patient
    side of the box centre (``left`` / ``right`` / ``midline`` or None), ``vertical`` the third of the
    image height holding the centre, ``parent`` the phrase of the finding whose box holds this one
    (``parent_number``) or else the ontology parent.

    ``mask`` (an addition to the contract): the ``(H, W)`` bool mask of the box when the grounding
    had masks (volumes: the mask on ``key_slice``), else None. It is kept for drawing only: it takes
    no part in ``==`` / ``hash`` and is left out of :meth:`to_json` (``mask_area_*`` summarise it).
    """

    number: int
    phrase: str
    label: str
    level: str
    hierarchy: tuple[str, ...]
    laterality: str | None
    score: float
    box: Box
    size_px: tuple[float, float]
    size_mm: tuple[float, float] | tuple[float, float, float] | None = None  # volumes: the 3D extent
    mask_area_px: int | None = None
    mask_area_mm2: float | None = None
    side: str | None = None
    vertical: str = "middle"
    location: str = ""
    parent: str | None = None
    parent_number: int | None = None
    source: str = "prediction"
    slices: tuple[int, int] | None = None
    key_slice: int | None = None
    extent_mm: tuple[float, float, float] | None = None
    world_box_mm: tuple[tuple[float, float, float], tuple[float, float, float]] | None = None
    size_source: str = "box"
    location_mm: tuple[float, float, float] | None = None
    mask: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def id(self) -> str:
        """``"F<number>"``: the name report sentences, VQA answers, the service and the page all use."""
        return finding_id(self.number)

    @property
    def longest_mm(self) -> float | None:
        """The longest side of ``size_mm``; None without spacing."""
        sizes = self.size_mm if self.size_mm is not None else self.extent_mm
        return None if sizes is None else float(max(sizes))

    @property
    def centre(self) -> tuple[float, float]:
        """``(x, y)`` pixel centre of the box."""
        x0, y0, x1, y1 = self.box
        return (x0 + x1) / 2.0, (y0 + y1) / 2.0

    @property
    def n_slices(self) -> int | None:
        return None if self.slices is None else self.slices[1] - self.slices[0] + 1

    def on_slice(self, index: int | None) -> bool:
        """Whether this finding is drawn on display slice ``index`` (2D findings: always)."""
        return self.slices is None or index is None or self.slices[0] <= index <= self.slices[1]

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types (floats rounded to 2 decimals, scores to 3); the mask is left out."""
        return {
            "id": self.id,
            "number": self.number,
            "phrase": self.phrase,
            "label": self.label,
            "level": self.level,
            "hierarchy": list(self.hierarchy),
            "laterality": self.laterality,
            "score": _r(self.score, 3),
            "box": _rt(self.box),
            "size_px": _rt(self.size_px),
            "size_mm": _rt(self.size_mm),
            "size_source": self.size_source,
            "longest_mm": _r(self.longest_mm),
            "mask_area_px": None if self.mask_area_px is None else int(self.mask_area_px),
            "mask_area_mm2": _r(self.mask_area_mm2),
            "side": self.side,
            "vertical": self.vertical,
            "location": self.location,
            "parent": self.parent,
            "parent_number": self.parent_number,
            "source": self.source,
            "slices": None if self.slices is None else [int(s) for s in self.slices],
            "key_slice": None if self.key_slice is None else int(self.key_slice),
            "extent_mm": _rt(self.extent_mm),
            "world_box_mm": None if self.world_box_mm is None else [_rt(c) for c in self.world_box_mm],
            "location_mm": _rt(self.location_mm),
        }
