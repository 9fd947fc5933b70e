"""The one input pipeline: a raw 2D image (or one slice of a volume) → the exact tensor the model sees.

Two steps, used by the dataset builder, the trainer, the Grounder, volumes, VQA, reports and the
service alike (nothing else derives windows or normalisation):

1. :func:`model_pixels`: raw values → uint8 *model pixels*, configured by :class:`InputConfig`
   (saved in every checkpoint's ``config.json`` and every built dataset's ``build_config.json``):

   - CT: its values mapped to Hounsfield units by their :class:`~medglip.core.intensity.CTForm`
     (HU as they are; an already-windowed picture back through its window; a standardised array
     through the affine its source documents), then the three windows of ``InputConfig.ct_windows``
     (lung, soft tissue, bone by default) stacked as the three channels ``(H, W, 3)``. So CT reaches
     the model as one kind of input whatever form it arrived in, and no window is chosen per image.
     An 8-bit grey CT picture whose form nobody declares is taken as a picture of
     :data:`~medglip.core.intensity.DEFAULT_PICTURE_WINDOW` (the lung window); other grey CT arrays
     are HU. See :func:`ct_form_of`;
   - other 8-bit images (PNG / JPEG pictures, ``uint8`` arrays) and bool masks: as they are;
   - everything else (MR, radiographs, ultrasound, 16-bit or float pictures): the
     ``InputConfig.percentiles`` of the image's own non-background values map to 0 and 255, per
     image (per slice for volumes), so one slice gives the same pixels on its own and inside its
     volume.

   The built dataset's PNG files ARE these pixels, so training reads exactly what inference makes.

   With ``InputConfig.context_slices = d > 0`` (the 2.5D input, as DeepLesion's detectors use it)
   a grey slice ``k`` of a volume becomes three channels: slices ``k - d``, ``k``, ``k + d`` (clamped
   at the volume's ends), each mapped with the centre slice's mapping (CT: the middle window of
   ``ct_windows``, soft tissue by default; others: the centre slice's percentiles). A lone 2D image
   has no neighbours: its centre stands in for them. Colour images are unchanged.

2. :func:`to_tensor`: letterbox to ``S × S`` (long side ``S``, aspect kept, zero padding at the
   bottom / right), grey → 3 channels, ImageNet mean / std. :func:`boxes_to_original` undoes the
   letterbox for boxes.

Pictures for people (overlays, visual prompts) are made by :func:`picture`: one CT window (soft
tissue unless asked otherwise), the other modalities as their model pixels.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import MedglipError
from .intensity import (
    CT_WINDOWS,
    DEFAULT_DISPLAY_WINDOW,
    DEFAULT_PICTURE_WINDOW,
    PERCENTILES,
    CTForm,
    looks_like_hu,
    parse_window,
    percentile_range,
    raw_range,
    window_to_uint8,
)

if TYPE_CHECKING:  # torch is imported where tensors are made: dataset-build workers never load it
    import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: The CT windows stacked as the model's three input channels, by default.
DEFAULT_INPUT_WINDOWS: tuple[str, str, str] = ("lung", "soft_tissue", "bone")
#: Version of the input pipeline; configs of an older version are converted or refused by their loaders.
#: 3: CT forms (8-bit CT pictures and standardised arrays mapped to HU before the windows; 2 took them as
#: they are). A version-2 config keeps version 2's pixels, so its checkpoints see what they were trained on.
PIPELINE_VERSION = 3
#: The first version that maps CT forms (:func:`ct_form_of`).
CT_FORMS_VERSION = 3


@dataclass(frozen=True)
class InputConfig:
    """How raw values become model pixels (saved with every checkpoint and every built dataset).

    Attributes:
        ct_windows: three ``(low, high)`` HU windows, one per input channel of a CT image.
        percentiles: the low / high percentiles of an image's non-background values that map to
            0 and 255 for non-CT, non-8-bit images.
        version: the pipeline version (:data:`PIPELINE_VERSION`).
        context_slices: the 2.5D input's step ``d``: grey volume slices become slices
            ``(k - d, k, k + d)`` as the three channels (0: off, one slice as above).
    """

    ct_windows: tuple[tuple[float, float], ...] = tuple(CT_WINDOWS[n] for n in DEFAULT_INPUT_WINDOWS)
    percentiles: tuple[float, float] = PERCENTILES
    version: int = PIPELINE_VERSION
    context_slices: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.context_slices, int) or isinstance(self.context_slices, bool) or self.context_slices < 0:
            raise ValueError(f"context_slices must be an integer >= 0 (0: no 2.5D input), got {self.context_slices!r}")
        if len(self.ct_windows) != 3:
            raise ValueError(f"ct_windows must hold three (low, high) windows, one per channel, got {self.ct_windows}")
        for w in self.ct_windows:
            parse_window(tuple(w))
        lo, hi = self.percentiles
        if not 0 <= lo < hi <= 100:
            raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {self.percentiles}")

    def to_json(self) -> dict[str, Any]:
        out = {
            "ct_windows": [list(w) for w in self.ct_windows],
            "percentiles": list(self.percentiles),
            "version": self.version,
        }
        if self.context_slices:  # absent = 0: files written before the 2.5D option read the same
            out["context_slices"] = self.context_slices
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> InputConfig:
        return cls(
            ct_windows=tuple(window_pair([float(v) for v in w]) for w in d["ct_windows"]),
            percentiles=value_pair([float(v) for v in d["percentiles"]]),
            version=int(d.get("version", 0)),
            context_slices=int(d.get("context_slices", 0)),
        )

    @classmethod
    def from_window_names(cls, names: tuple[str, ...], **kw: Any) -> InputConfig:
        return cls(ct_windows=tuple(parse_window(n) for n in names), **kw)

    def replace(self, **changes: Any) -> InputConfig:
        return dataclasses.replace(self, **changes)

    def window_names(self) -> list[str]:
        """The name of each channel's window (``"low,high"`` for unnamed ones)."""
        by_value: dict[tuple[float, ...], str] = {v: k for k, v in CT_WINDOWS.items()}
        return [by_value.get(tuple(w), f"{w[0]:g},{w[1]:g}") for w in self.ct_windows]


def value_pair(values: Sequence[float]) -> tuple[float, float]:
    """``values`` as a ``(low, high)`` pair, the values themselves (ValueError unless there are two)."""
    lo, hi = values
    return lo, hi


def window_pair(window: Sequence[float]) -> tuple[float, float]:
    """A CT window's ``(low, high)`` pair, the values themselves; MedglipError (from :func:`parse_window`,
    as :class:`InputConfig` raises) unless it is a valid window."""
    parse_window(tuple(window))
    return value_pair(window)


# ------------------------------------------------------------------------------ model pixels
def image_channels(array: np.ndarray, what: str = "image") -> np.ndarray:
    """A 2D image's channel layout normalised: ``(H, W)``, ``(H, W, 1)`` → ``(H, W)``; RGBA → RGB;
    channels-first colour → channels-last. Anything else raises :class:`MedglipError`."""
    a = np.asarray(array)
    if a.ndim == 2:
        out = a
    elif a.ndim == 3 and a.shape[2] == 1:
        out = a[..., 0]
    elif a.ndim == 3 and a.shape[2] in (3, 4):
        out = a[..., :3]
    elif a.ndim == 3 and a.shape[0] in (3, 4) and a.shape[2] > 4:
        out = np.moveaxis(a[:3], 0, -1)
    elif a.ndim == 3:
        raise MedglipError(
            f"{what} of shape {a.shape} looks like a 3D volume: ground it with "
            "Grounder.ground_volume(array, phrases, geometry=...) or pass one 2D slice"
        )
    else:
        raise MedglipError(f"{what} has shape {a.shape}: expected a 2D image (H, W) or (H, W, 3)")
    if out.size == 0 or min(out.shape[:2]) < 1:
        raise MedglipError(f"{what} is empty (shape {a.shape})")
    return out


def _equal_channels(a: np.ndarray) -> bool:
    """An ``(H, W, 3)`` image whose three channels are equal (a grey picture saved as RGB)."""
    return (
        a.ndim == 3
        and a.shape[2] == 3
        and np.array_equal(a[..., 0], a[..., 1])
        and np.array_equal(a[..., 0], a[..., 2])
    )


def ct_form_of(
    array: np.ndarray, modality: str | None, config: InputConfig = InputConfig(), form: CTForm | None = None
) -> CTForm | None:
    """The :class:`CTForm` in which :func:`model_pixels` takes ``array`` (channels as
    :func:`image_channels` leaves them), or None when it is no CT input.

    - Grey non-8-bit values of modality CT, or of unknown modality that look like Hounsfield units,
      are CT: ``form`` when given (modality CT), else HU.
    - An 8-bit grey image of modality CT (an RGB one with equal channels counts as grey) is CT too:
      ``form`` when given, else a picture of :data:`DEFAULT_PICTURE_WINDOW`. 8-bit pictures of unknown
      modality are not (nothing says they are CT).
    - Colour images and masks never are.

    With ``config.version`` below :data:`CT_FORMS_VERSION` (checkpoints and datasets made before the
    forms) the old rule holds: only grey non-8-bit images are CT, always as HU, ``form`` ignored.
    """
    a = np.asarray(array)
    if a.dtype == np.bool_:
        return None
    grey = a.ndim == 2
    if config.version < CT_FORMS_VERSION:
        if a.dtype == np.uint8 or not grey:
            return None
        return CTForm() if modality == "CT" or (modality is None and looks_like_hu(a)) else None
    if a.dtype == np.uint8:
        if modality != "CT" or not (grey or _equal_channels(a)):
            return None
        return form if form is not None else CTForm.windowed(DEFAULT_PICTURE_WINDOW)
    if not grey:
        return None
    if modality == "CT":
        return form if form is not None else CTForm()
    return CTForm() if modality is None and looks_like_hu(a) else None


def is_ct_input(array: np.ndarray, modality: str | None, config: InputConfig = InputConfig()) -> bool:
    """Whether :func:`model_pixels` windows ``array`` as CT (:func:`ct_form_of` finds a form)."""
    return ct_form_of(array, modality, config) is not None


def _ct_hu(a: np.ndarray, form: CTForm) -> np.ndarray:
    """The approximate HU of a CT image ``a`` of ``form`` (an equal-channel RGB picture as grey).
    HU input is returned as it is, so its pixels stay exactly those of pipeline version 2."""
    grey = a[..., 0] if a.ndim == 3 else a
    return form.to_hu(grey)


def _ct_record(a: np.ndarray, form: CTForm, windows: list[list[float]], config: InputConfig) -> dict[str, Any]:
    """The ``ct_windows`` intensity record; from version 3 on it says which form the values had."""
    rec: dict[str, Any] = {"mode": "ct_windows", "windows": windows, **raw_range(a)}
    if config.version >= CT_FORMS_VERSION:
        rec["form"] = form.to_json()
    return rec


def model_pixels(
    raw: np.ndarray,
    modality: str | None,
    config: InputConfig = InputConfig(),
    *,
    what: str = "image",
    neighbours: tuple[np.ndarray, np.ndarray] | None = None,
    form: CTForm | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Raw values of one 2D image → uint8 model pixels and the ``intensity`` record saying how.

    Args:
        raw: ``(H, W)`` or ``(H, W, 3|4)`` (or channels-first colour) values of any numeric dtype.
        modality: canonical code, or None (then Hounsfield-like values are taken as CT).
        config: the model's (or the build's) :class:`InputConfig`.
        what: names the input in errors.
        neighbours: with ``config.context_slices > 0``, the raw slices ``k - d`` and ``k + d`` of a
            volume (:func:`slice_pixels` finds them); None: ``raw`` stands in for both.
        form: how a CT image's values relate to HU (None: :func:`ct_form_of`'s default for its dtype).

    Returns:
        ``(pixels, intensity)``: pixels ``(H, W, 3)`` for CT, colour and the 2.5D input, ``(H, W)``
        for grey; ``intensity["mode"]`` is ``ct_windows`` (with ``windows``, one per channel, and
        ``form``, the :class:`CTForm` as JSON),
        ``identity``, ``scale`` or ``percentile`` (with ``low`` / ``high``: ``raw = low + pixel /
        255 * (high - low)``); a 2.5D input's record adds ``"context": [-d, 0, d]`` (the slice of
        each channel; its centre channel is the image's own).

    Raises:
        MedglipError: a non-numeric dtype, a shape that is not a 2D image, or neighbours of
        another shape.
    """
    if config.context_slices:
        return _context_pixels(raw, modality, config, what, neighbours, form)
    a = image_channels(raw, what)
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255, {"mode": "identity", "low": 0.0, "high": 1.0}
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise MedglipError(f"{what}: unsupported pixel type {a.dtype}: expected a numeric image")
    ct = ct_form_of(a, modality, config, form)
    if ct is not None:  # every CT form → HU → the same three windows
        hu = _ct_hu(a, ct)
        pix = np.stack([window_to_uint8(hu, lo, hi) for lo, hi in config.ct_windows], axis=-1)
        return pix, _ct_record(a, ct, [list(w) for w in config.ct_windows], config)
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a), {"mode": "identity", "low": 0.0, "high": 255.0}
    if a.ndim == 3 and np.issubdtype(a.dtype, np.floating) and np.nanmin(a) >= 0 and np.nanmax(a) <= 1:
        pix = np.clip(np.rint(np.nan_to_num(a) * 255), 0, 255).astype(np.uint8)
        return pix, {"mode": "scale", "low": 0.0, "high": 1.0}
    rec = _percentile_record(a, config)
    return window_to_uint8(a, rec["low"], rec["high"]), rec


def _percentile_record(a: np.ndarray, config: InputConfig) -> dict[str, Any]:
    """The ``percentile`` intensity record of grey image ``a``: its own percentiles map to 0 and 255."""
    lo, hi = percentile_range(a, *config.percentiles)
    return {"mode": "percentile", "low": lo, "high": hi, "percentiles": list(config.percentiles), **raw_range(a)}


def _context_pixels(
    raw: np.ndarray,
    modality: str | None,
    config: InputConfig,
    what: str,
    neighbours: tuple[np.ndarray, np.ndarray] | None,
    form: CTForm | None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """The 2.5D input (``config.context_slices = d``): three slices as the channels, each mapped
    with the centre slice's mapping (CT: its form, then the middle window)."""
    flat = config.replace(context_slices=0)
    a = image_channels(raw, what)
    if a.ndim == 3 or a.dtype == np.bool_ or not (np.issubdtype(a.dtype, np.number)):
        return model_pixels(raw, modality, flat, what=what, form=form)  # colour (or an error): no neighbours
    below, above = (a, a) if neighbours is None else (image_channels(n, what) for n in neighbours)
    if below.shape != a.shape or above.shape != a.shape:
        raise MedglipError(
            f"{what}: neighbouring slices of shape {below.shape} / {above.shape} differ from the slice's {a.shape}"
        )
    d = config.context_slices
    context = {"context": [-d, 0, d]}
    ct = ct_form_of(a, modality, config, form)
    if ct is not None:
        lo, hi = config.ct_windows[1]
        rec = {**_ct_record(a, ct, [[lo, hi]] * 3, config), **context}
        return np.stack([window_to_uint8(_ct_hu(x, ct), lo, hi) for x in (below, a, above)], axis=-1), rec
    if a.dtype == np.uint8:
        return np.stack([below, a, above], axis=-1), {"mode": "identity", "low": 0.0, "high": 255.0, **context}
    rec = {**_percentile_record(a, config), **context}
    lo, hi = rec["low"], rec["high"]
    return np.stack([window_to_uint8(x, lo, hi) for x in (below, a, above)], axis=-1), rec


def slice_pixels(
    volume: np.ndarray,
    plan: Any,
    index: int,
    modality: str | None,
    config: InputConfig,
    *,
    what: str = "slice",
    form: CTForm | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Model pixels of display slice ``index`` of ``volume`` (``(i, j, k[, C])``) cut by ``plan``
    (a :class:`~medglip.core.orient.SlicePlan`): :func:`model_pixels` of that slice (``form``: the
    volume's CT form), with its neighbours ``index ± config.context_slices`` (clamped to the
    volume) for the 2.5D input."""
    centre = plan.view(volume, index)
    d = config.context_slices
    if not d:
        return model_pixels(centre, modality, config, what=what, form=form)
    last = plan.n_slices - 1
    neighbours = (plan.view(volume, max(0, index - d)), plan.view(volume, min(last, index + d)))
    return model_pixels(centre, modality, config, what=what, neighbours=neighbours, form=form)


def picture(
    pixels: np.ndarray, intensity: dict[str, Any] | None = None, *, window: Any = None, raw: np.ndarray | None = None
) -> np.ndarray:
    """Pixels for people: one CT window in grey, other images as their model pixels.

    Args:
        pixels: model pixels (:func:`model_pixels`).
        intensity: their ``intensity`` record (None: the pixels are shown as they are).
        window: for CT, a window name / ``"low,high"`` / pair; default :data:`DEFAULT_DISPLAY_WINDOW`.
            A window among the input channels is that channel; another one needs ``raw``.
        raw: the raw values, to show a window that is not an input channel (mapped to HU by the
            record's ``form`` first).

    A 2.5D input (``intensity["context"]``) is shown as its centre slice.

    Raises:
        MedglipError: a window that is neither an input channel nor computable (no ``raw``).
    """
    context = bool(intensity and intensity.get("context")) and pixels.ndim == 3
    if not intensity or intensity.get("mode") != "ct_windows":
        return np.ascontiguousarray(pixels[..., 1]) if context else pixels
    wanted = parse_window(DEFAULT_DISPLAY_WINDOW if window is None else window)
    windows = [tuple(float(v) for v in w) for w in intensity.get("windows", ())]
    if wanted in windows and pixels.ndim == 3:
        return np.ascontiguousarray(pixels[..., 1 if context else windows.index(wanted)])
    if raw is not None:
        form = CTForm.from_json(intensity["form"]) if intensity.get("form") else CTForm()
        return window_to_uint8(_ct_hu(image_channels(raw), form), *wanted)
    names: dict[tuple[float, ...], str] = {v: k for k, v in CT_WINDOWS.items()}
    raise MedglipError(
        f"CT window {window!r} is not one of this image's channels "
        f"({', '.join(names.get(w, f'{w[0]:g},{w[1]:g}') for w in windows)}) and its raw values "
        "are not at hand"
    )


# ------------------------------------------------------------------------------ tensors
def to_tensor(pixels: np.ndarray, size: int) -> tuple[torch.Tensor, dict[str, Any]]:
    """Model pixels → the model's input tensor.

    Args:
        pixels: uint8 ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)`` (alpha dropped).
        size: the model's input side ``S``.

    Returns:
        ``(FloatTensor (3, S, S), {"scale": float, "orig_size": (H, W)})``.
    """
    import torch
    import torch.nn.functional as F

    a = np.asarray(pixels)
    if a.dtype != np.uint8:
        raise TypeError(f"to_tensor expects uint8 model pixels, got {a.dtype} (use model_pixels first)")
    if a.ndim == 3 and a.shape[2] in (1, 3, 4):
        a = a[..., :3] if a.shape[2] >= 3 else a[..., 0]
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"expected (H, W) or (H, W, 3) pixels, got shape {np.asarray(pixels).shape}")
    h, w = a.shape[:2]
    if h == 0 or w == 0:
        raise ValueError("empty image")
    scale = size / max(h, w)
    nh, nw = max(1, min(size, round(h * scale))), max(1, min(size, round(w * scale)))
    x = torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1).float().div_(255.0)
    if (nh, nw) != (h, w):
        x = (
            F.interpolate(x[None], size=(nh, nw), mode="bilinear", align_corners=False, antialias=scale < 1)
            .squeeze(0)
            .clamp_(0, 1)
        )
    out = torch.zeros(3, size, size)
    out[:, :nh, :nw] = x
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (out - mean) / std, {"scale": scale, "orig_size": (h, w)}


def boxes_to_original(boxes: torch.Tensor, meta: dict[str, Any]) -> torch.Tensor:
    """xyxy boxes in input pixels → original pixels (divide by ``scale``, clip to the original size)."""
    h, w = meta["orig_size"]
    out = boxes.float() / float(meta["scale"])
    out[..., 0::2] = out[..., 0::2].clamp(0, w)
    out[..., 1::2] = out[..., 1::2].clamp(0, h)
    return out
