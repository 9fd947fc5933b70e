"""Raw intensities → 8-bit pixels: the named CT windows, the forms CT values arrive in, percentile ranges.

The CT windows are defined here and nowhere else (the ontology names them per structure, the input
pipeline stacks three of them as the model's channels, pictures show one of them). :class:`CTForm`
says how a CT image's stored values relate to Hounsfield units (HU volumes, already-windowed
pictures, standardised arrays); the input pipeline maps every form back to HU through it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import MedglipError

#: Named CT windows as ``(low, high)`` Hounsfield units (window width W, level L in the comment).
CT_WINDOWS: dict[str, tuple[float, float]] = {
    "lung": (-1350.0, 150.0),  # W1500 L-600: parenchyma, nodules, airway
    "mediastinum": (-135.0, 215.0),  # W350 L40: heart, great vessels, mediastinum, effusions
    "soft_tissue": (-160.0, 240.0),  # W400 L40: abdominal/pelvic organs, muscles, neck
    "brain": (0.0, 80.0),  # W80 L40: brain parenchyma, intracranial lesions
    "bone": (-450.0, 1050.0),  # W1500 L300: skeleton
    "liver": (-45.0, 105.0),  # W150 L30: separates hepatic lesions from parenchyma
}
#: The window pictures of CT use unless the caller names another.
DEFAULT_DISPLAY_WINDOW = "soft_tissue"
#: Percentiles of the non-background values that map to 0 and 255 for every non-CT modality.
PERCENTILES: tuple[float, float] = (0.5, 99.5)
#: The HU window an 8-bit CT picture is taken to show when nothing says which (``read_input(ct_window=)``
#: and ``Grounder.ground(ct_window=)`` override it): the lung window (W1500 L-600), the one chest CT
#: findings (nodules, tumours, infection) are read, published and exported in.
DEFAULT_PICTURE_WINDOW = "lung"

CT_FORM_KINDS: tuple[str, ...] = ("hu", "windowed", "standardised")


@dataclass(frozen=True)
class CTForm:
    """How the stored values of a CT image relate to Hounsfield units (the input pipeline's one key).

    - ``hu``: the values ARE Hounsfield units (NIfTI / NRRD volumes, DICOM after its rescale).
    - ``windowed``: a picture of the HU window ``window = (low, high)``: value 0 shows ``low``, value
      ``white`` (255 for 8 bits) shows ``high``, linearly between (``HU = low + value / white ×
      (high - low)``). A value at 0 or ``white`` stands for everything beyond its end of the window
      (saturated: what lay outside the window is not in the picture); it is taken as the window's end,
      unless the source knows what its saturated dark pixels mostly are: ``below_hu`` (e.g. air, -1000,
      for a narrow window of a chest slice whose 0 pixels are mostly air and lung).
    - ``standardised``: an array a source standardised (z-scores): ``HU ≈ offset + scale × value``, the
      affine the source's adapter documents; values equal to ``background`` (the outside of a mask the
      source multiplied in) are ``background_hu`` (air: -1000 HU).

    Build with :meth:`windowed` / :meth:`standardised`; ``CTForm()`` is HU.
    """

    kind: str = "hu"
    window: tuple[float, float] | None = None
    white: float = 255.0
    offset: float = 0.0
    scale: float = 1.0
    background: float | None = None
    background_hu: float = -1000.0
    below_hu: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in CT_FORM_KINDS:
            raise MedglipError(f"unknown CT form {self.kind!r}; expected one of {', '.join(CT_FORM_KINDS)}")
        if self.kind == "windowed":
            if self.window is None:
                raise MedglipError("a windowed CT picture needs its HU window (low, high)")
            object.__setattr__(self, "window", parse_window(tuple(self.window)))
            if not (np.isfinite(self.white) and self.white > 0):
                raise MedglipError(f"the white value of a windowed CT picture must be > 0, got {self.white!r}")
            if self.below_hu is not None and not (np.isfinite(self.below_hu) and self.below_hu <= self.window[0]):
                raise MedglipError(
                    f"below_hu ({self.below_hu!r}) must be a HU value at or below the window's low end "
                    f"{self.window[0]:g}"
                )
        if self.kind == "standardised" and not (
            np.isfinite(self.scale) and self.scale > 0 and np.isfinite(self.offset)
        ):
            raise MedglipError(
                f"a standardised CT array needs a finite offset and a scale > 0 (HU per unit), "
                f"got offset {self.offset!r}, scale {self.scale!r}"
            )

    @classmethod
    def windowed(cls, window: str | Sequence[float], white: float = 255.0, *, below_hu: float | None = None) -> CTForm:
        """A picture of ``window`` (a :data:`CT_WINDOWS` name, ``"low,high"`` or a pair); ``below_hu``:
        the HU its saturated dark pixels (value 0) stand for (None: the window's low end)."""
        return cls(
            kind="windowed",
            window=parse_window(window),
            white=float(white),
            below_hu=None if below_hu is None else float(below_hu),
        )

    @classmethod
    def standardised(
        cls, offset: float, scale: float, *, background: float | None = None, background_hu: float = -1000.0
    ) -> CTForm:
        """A standardised array: ``HU ≈ offset + scale × value``; ``background`` values are ``background_hu``."""
        return cls(
            kind="standardised",
            offset=float(offset),
            scale=float(scale),
            background=None if background is None else float(background),
            background_hu=float(background_hu),
        )

    def to_hu(self, values: np.ndarray) -> np.ndarray:
        """Approximate HU of ``values`` (float32; the array itself for ``hu``)."""
        if self.kind == "hu":
            return values
        x = np.array(values, dtype=np.float32, copy=True)
        if self.kind == "windowed":
            assert self.window is not None  # __post_init__ refuses a windowed form without one
            lo, hi = self.window
            x *= np.float32((hi - lo) / self.white)
            x += np.float32(lo)
            if self.below_hu is not None:
                x[np.asarray(values) <= 0] = np.float32(self.below_hu)
            return x
        outside = None if self.background is None else np.asarray(values) == self.background
        x *= np.float32(self.scale)
        x += np.float32(self.offset)
        if outside is not None:
            x[outside] = np.float32(self.background_hu)
        return x

    def to_json(self) -> dict[str, Any]:
        if self.kind == "windowed":
            assert self.window is not None  # __post_init__ refuses a windowed form without one
            out: dict[str, Any] = {"kind": "windowed", "window": list(self.window), "white": self.white}
            if self.below_hu is not None:  # absent: the window's end (records written before it read the same)
                out["below_hu"] = self.below_hu
            return out
        if self.kind == "standardised":
            return {
                "kind": "standardised",
                "offset": self.offset,
                "scale": self.scale,
                "background": self.background,
                "background_hu": self.background_hu,
            }
        return {"kind": "hu"}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> CTForm:
        kind = d.get("kind", "hu")
        if kind == "windowed":
            return cls.windowed(tuple(d["window"]), d.get("white", 255.0), below_hu=d.get("below_hu"))
        if kind == "standardised":
            return cls.standardised(
                d["offset"], d["scale"], background=d.get("background"), background_hu=d.get("background_hu", -1000.0)
            )
        return cls(kind=kind)


def parse_window(spec: str | Sequence[float]) -> tuple[float, float]:
    """A window name of :data:`CT_WINDOWS`, ``"low,high"`` text or a ``(low, high)`` pair → HU bounds.

    Raises:
        MedglipError: an unknown name, unparseable text, or ``low >= high``.
    """
    if isinstance(spec, str):
        if spec in CT_WINDOWS:
            return CT_WINDOWS[spec]
        try:
            lo, hi = (float(x) for x in spec.split(","))
        except ValueError:
            raise MedglipError(
                f"unknown CT window {spec!r}; expected one of {', '.join(CT_WINDOWS)} or 'low,high' in HU"
            ) from None
    else:
        try:
            lo, hi = (float(v) for v in spec)
        except (TypeError, ValueError):
            raise MedglipError(f"a CT window must be a name or a (low, high) pair in HU, got {spec!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise MedglipError(f"CT window low must be below high, got {spec!r}")
    return lo, hi


def window_to_uint8(array: np.ndarray, low: float, high: float) -> np.ndarray:
    """Linear map of ``[low, high]`` to ``[0, 255]`` with clipping (NaN → 0); shape preserved.

    Works in one float32 copy (in place), so a large image costs 5 bytes per value, not 12.
    """
    x = np.array(array, dtype=np.float32, copy=True)
    x -= np.float32(low)
    x *= np.float32(255.0 / (high - low))
    np.nan_to_num(x, copy=False, nan=0.0)
    np.rint(x, out=x)
    np.clip(x, 0, 255, out=x)
    return x.astype(np.uint8)


def percentile_range(
    array: np.ndarray, lo: float = PERCENTILES[0], hi: float = PERCENTILES[1], *, max_samples: int = 2_000_000
) -> tuple[float, float]:
    """Percentiles of the non-background values of an image or volume (a strided sample when big).

    Background is the minimum value when it fills more than a third of the array (MR and
    ultrasound pad with zeros), so that empty air does not pull the range down. A constant array
    gets a range one unit (or a millionth of its magnitude) wide, so it stays displayable.
    """
    flat = np.asarray(array).reshape(-1)
    if flat.size > max_samples:
        flat = flat[:: int(np.ceil(flat.size / max_samples))]
    flat = flat[np.isfinite(flat)] if np.issubdtype(flat.dtype, np.floating) else flat
    if flat.size == 0:
        return 0.0, 1.0
    vmin = flat.min()
    if np.count_nonzero(flat == vmin) > flat.size / 3:
        rest = flat[flat != vmin]
        if rest.size:
            flat = rest
    p_lo, p_hi = (float(v) for v in np.percentile(flat, [lo, hi]))
    if not p_hi > p_lo:  # ``+ 1`` alone is lost in rounding at huge magnitudes (1e308 fill values)
        p_hi = p_lo + max(1.0, abs(p_lo) * 1e-6)
    return p_lo, p_hi


def looks_like_hu(array: np.ndarray) -> bool:
    """For arrays of unknown modality: signed values reaching air (−3100..−900) and at most 4000."""
    a = np.asarray(array)
    if a.size == 0 or not (np.issubdtype(a.dtype, np.signedinteger) or np.issubdtype(a.dtype, np.floating)):
        return False
    finite = a[np.isfinite(a)] if np.issubdtype(a.dtype, np.floating) else a
    if finite.size == 0:
        return False
    lo, hi = float(finite.min()), float(finite.max())
    return -3100.0 <= lo <= -900.0 and 0.0 < hi <= 4000.0


def raw_range(raw: np.ndarray) -> dict[str, float]:
    """``{"raw_min", "raw_max"}`` of the finite values (empty when there are none)."""
    a = np.asarray(raw)
    finite = a[np.isfinite(a)] if np.issubdtype(a.dtype, np.floating) else a
    return {"raw_min": float(finite.min()), "raw_max": float(finite.max())} if finite.size else {}


def intensity_record(mode: str, low: float, high: float, raw: np.ndarray, **extra: Any) -> dict[str, Any]:
    """An ``intensity`` record of one channel: ``raw = low + pixel / 255 * (high - low)``."""
    rec: dict[str, Any] = {"mode": mode, "low": float(low), "high": float(high), **raw_range(raw)}
    rec.update(extra)
    return rec
