"""Augmentations that make the most of few labelled patients: lesion copy-paste, intensity, zoom.

**Copy-paste** (:class:`LesionBank`, :func:`paste_lesions`): real lesions (annotations of level
``lesion`` with their masks) are cut from the training images and pasted into other images of the
same modality whose case shows the lesion's body region — other slices of the same patient, other
patients — at another scale and position:

- placement: inside the mask of the organ that holds the lesion when the target image has one
  annotated (the lesion's ontology parent, e.g. "brain" for "brain tumor"), else inside the body
  (:func:`medglip.core.rules.body_columns`' level); among a few candidate positions, the one whose
  surroundings look most like the lesion's own surroundings (mean of a ring around the mask) wins,
  so a lung nodule lands in aerated lung rather than in fat or bone;
- intensity: the lesion keeps its contrast to its surroundings (its pixels are shifted by the
  difference of the two rings' means), and its mask edge is feathered;
- the pasted lesion becomes an annotation (box of its mask, the lesion's phrase); a paste that
  would overlap an existing box (IoU > 0.2) is dropped.

**Intensity** (:func:`jitter_intensity`): contrast, brightness and gamma jitter of the model pixels.
**Zoom** (:func:`zoom`): crop a random window (zoom in) so that lesions appear at other sizes.
**Elastic** (:func:`elastic`): a smooth random deformation (torchvision's elastic kernels, those of
``v2.ElasticTransform``) of the image, its masks and its boxes together: an object with a mask gets the tight box of its
deformed mask, one whose mask vanishes is dropped (so other patients' anatomy, shaped differently,
is seen in training).

Everything is a pure function of a numpy Generator, so an item is the same in every worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from scipy import ndimage
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as TF

from ..core.boxes import box_iou
from ..core.masks import decode_segmentation
from ..core.rules import BODY_LEVEL


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation (all off when a probability is 0 or a range is (1, 1)).

    Attributes:
        flip_prob: probability of a horizontal flip (phrases' left/right swapped, boxes mirrored).
            Sagittal slices are never flipped (that would mirror anterior/posterior, not left/right),
            nor images holding a phrase whose mirror term does not exist ("right middle lobe").
        min_scale: shrink jitter: the image content fills a random fraction in ``[min_scale, 1]`` of
            the input side, placed at a random offset (1.0 disables it).
        zoom_prob, max_zoom: probability of zooming in by a factor in ``[1, max_zoom]`` (a random
            crop holding every box when possible).
        copy_paste_prob: probability of pasting lesions from the bank into an image.
        copy_paste_max: at most this many lesions pasted into one image.
        paste_scale: ``(low, high)`` scale of a pasted lesion.
        intensity_prob: probability of a contrast / brightness / gamma jitter.
        elastic_prob: probability of an elastic deformation (:func:`elastic`).
        elastic_displacement: its typical (standard deviation) pixel displacement, as a fraction of
            the image's long side.
        elastic_sigma: its smoothness, the Gaussian's sigma as a fraction of the long side.
        coarse_phrase_prob: probability that a lesion phrase of an image is asked by one of its
            coarser lesion terms instead ("lower-grade glioma" as "glioma" or "brain tumor",
            "melanoma" as "skin lesion"; the ontology's hierarchy): Med-GLIP's hierarchical phrases, so
            a model trained on fine labels also answers the words users type. Never for organs or
            sub-structures (the anterior hippocampus alone is no box of "hippocampus").
    """

    flip_prob: float = 0.5
    min_scale: float = 0.8
    zoom_prob: float = 0.0
    max_zoom: float = 1.6
    copy_paste_prob: float = 0.0
    copy_paste_max: int = 2
    paste_scale: tuple[float, float] = (0.7, 2.5)
    intensity_prob: float = 0.0
    elastic_prob: float = 0.0
    elastic_displacement: float = 0.01
    elastic_sigma: float = 0.05
    coarse_phrase_prob: float = 0.0


@dataclass
class Lesion:
    """One real lesion cut out of a training image."""

    phrase: str
    modality: str
    region: str | None
    parent: str | None
    pixels: np.ndarray  # (h, w[, C]) uint8 crop around the mask
    mask: np.ndarray  # (h, w) bool
    ring_mean: float  # mean of the surroundings (a ring around the mask), all channels
    case: tuple


def _ring(mask: np.ndarray, width: int) -> np.ndarray:
    grown = ndimage.binary_dilation(mask, iterations=width)
    return grown & ~mask


class LesionBank:
    """The training split's lesions, cut out once (at most ``limit``, the first in image order)."""

    def __init__(self, lesions: list[Lesion]) -> None:
        self.lesions = lesions

    @classmethod
    def collect(
        cls,
        images: list[dict],
        anns_of: dict[int, list[dict]],
        load,
        *,
        region_of: dict[str, str | None],
        parent_of: dict[str, str | None],
        limit: int = 2000,
        margin: int = 6,
    ) -> LesionBank:
        """Cut every lesion annotation (with a segmentation) out of its image (``load(index)``)."""
        out: list[Lesion] = []
        for idx, info in enumerate(images):
            anns = [a for a in anns_of.get(info["id"], []) if a.get("level") == "lesion" and a.get("segmentation")]
            if not anns:
                continue
            img = load(idx)
            h, w = img.shape[:2]
            for a in anns:
                mask = decode_segmentation(a["segmentation"], h, w)
                if mask is None or mask.sum() < 4:
                    continue
                ys, xs = np.nonzero(mask)
                y0, y1 = max(0, ys.min() - margin), min(h, ys.max() + 1 + margin)
                x0, x1 = max(0, xs.min() - margin), min(w, xs.max() + 1 + margin)
                m = mask[y0:y1, x0:x1]
                crop = img[y0:y1, x0:x1]
                ring = _ring(m, max(2, margin // 2))
                if not ring.any():
                    continue
                out.append(
                    Lesion(
                        a["phrase"],
                        str(info.get("modality")),
                        region_of.get(a["phrase"]),
                        parent_of.get(a["phrase"]),
                        crop.copy(),
                        m.copy(),
                        float(crop[ring].mean()),
                        (info.get("source"), info.get("case_id")),
                    )
                )
                if len(out) >= limit:
                    return cls(out)
        return cls(out)

    def candidates(self, modality: str, regions: set[str]) -> list[Lesion]:
        """Lesions of ``modality`` whose body region the target case shows."""
        return [les for les in self.lesions if les.modality == modality and (les.region in regions or not regions)]


def _resize(a: np.ndarray, shape: tuple[int, int], order: Literal[0, 1, 3]) -> np.ndarray:
    zoom = (shape[0] / a.shape[0], shape[1] / a.shape[1]) + ((1,) if a.ndim == 3 else ())
    out = ndimage.zoom(a.astype(np.float32), zoom, order=order, mode="nearest")
    return out[: shape[0], : shape[1]]


def paste_lesions(
    img: np.ndarray,
    boxes: np.ndarray,
    phrases: list[str],
    lesions: list[Lesion],
    rng: np.random.Generator,
    cfg: AugmentConfig,
    *,
    organ_masks: dict[str, np.ndarray],
    masks: np.ndarray | None = None,
) -> tuple:
    """Paste up to ``cfg.copy_paste_max`` of ``lesions`` into ``img`` (see the module docstring).

    Args:
        img: uint8 ``(H, W[, C])`` model pixels.
        boxes: ``(N, 4)`` xyxy of the image's annotations; phrases: theirs.
        lesions: the bank's candidates for this image.
        organ_masks: ``phrase -> (H, W) bool`` of the organs annotated on this image.
        masks: the annotations' ``(N, H, W)`` bool masks, when they must follow (the pasted
            lesions' masks are appended; the random draws are the same with or without).

    Returns:
        The new image, boxes and phrases (the pasted lesions appended), and with ``masks`` the new
        ``(N', H, W)`` masks.
    """
    pasted: list[np.ndarray] = []

    def result(im: np.ndarray, bx: np.ndarray, ph: list[str]) -> tuple:
        if masks is None:
            return im, bx, ph
        extra = np.stack(pasted) if pasted else np.zeros((0,) + img.shape[:2], bool)
        return im, bx, ph, np.concatenate([masks.reshape((-1,) + img.shape[:2]).astype(bool), extra])

    if not lesions:
        return result(img, boxes, phrases)
    out = img.astype(np.float32)
    h, w = img.shape[:2]
    grey = out if out.ndim == 2 else out.mean(axis=-1)
    body = grey > BODY_LEVEL
    boxes, phrases = boxes.copy(), list(phrases)
    for _ in range(int(rng.integers(1, cfg.copy_paste_max + 1))):
        les = lesions[int(rng.integers(len(lesions)))]
        s = float(rng.uniform(*cfg.paste_scale))
        lh, lw = max(3, round(les.mask.shape[0] * s)), max(3, round(les.mask.shape[1] * s))
        if lh >= h - 2 or lw >= w - 2:
            continue
        mask = _resize(les.mask.astype(np.float32), (lh, lw), order=1) > 0.5
        if mask.sum() < 4:
            continue
        pix = _resize(les.pixels, (lh, lw), order=1)
        if rng.random() < 0.5:
            mask, pix = mask[:, ::-1], pix[:, ::-1]
        allowed = organ_masks.get(les.parent) if les.parent else None
        area = allowed if allowed is not None and allowed.any() else body
        ys, xs = np.nonzero(area)
        if ys.size == 0:
            continue
        ring = _ring(mask, 3)
        best = None
        for k in rng.integers(0, ys.size, size=8):  # candidate centres inside the allowed area
            y0, x0 = int(ys[k]) - lh // 2, int(xs[k]) - lw // 2
            if y0 < 0 or x0 < 0 or y0 + lh > h or x0 + lw > w:
                continue
            if not area[y0 : y0 + lh, x0 : x0 + lw][mask].mean() > 0.8:
                continue
            box = np.array([[x0, y0, x0 + lw, y0 + lh]], np.float64)
            if len(boxes) and box_iou(box, boxes).max() > 0.2:
                continue
            cost = abs(float(grey[y0 : y0 + lh, x0 : x0 + lw][ring].mean()) - les.ring_mean)
            if best is None or cost < best[0]:
                best = (cost, y0, x0)
        if best is None:
            continue
        _, y0, x0 = best
        patch = out[y0 : y0 + lh, x0 : x0 + lw]
        shift = float(grey[y0 : y0 + lh, x0 : x0 + lw][ring].mean()) - les.ring_mean
        alpha = ndimage.gaussian_filter(mask.astype(np.float32), 1.0)
        alpha = np.where(mask, np.maximum(alpha, 0.5), alpha)
        if patch.ndim == 3:
            alpha = alpha[..., None]
            if pix.ndim == 2:
                pix = np.repeat(pix[..., None], patch.shape[2], axis=2)
        elif pix.ndim == 3:
            pix = pix.mean(axis=-1)
        patch[:] = patch * (1 - alpha) + np.clip(pix + shift, 0, 255) * alpha
        ys_m, xs_m = np.nonzero(mask)
        boxes = np.concatenate(
            [boxes.reshape(-1, 4), [[x0 + xs_m.min(), y0 + ys_m.min(), x0 + xs_m.max() + 1, y0 + ys_m.max() + 1]]]
        )
        phrases.append(les.phrase)
        if masks is not None:
            full = np.zeros((h, w), bool)
            full[y0 : y0 + lh, x0 : x0 + lw] = mask
            pasted.append(full)
    return result(np.clip(np.rint(out), 0, 255).astype(np.uint8), boxes, phrases)


def jitter_intensity(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Contrast ×[0.8, 1.25], brightness ±20, gamma [0.75, 1.33] on uint8 pixels (all channels alike)."""
    x = img.astype(np.float32) / 255.0
    x = np.clip(x ** float(np.exp(rng.uniform(np.log(0.75), np.log(1.33)))), 0, 1)
    x = (x - 0.5) * float(rng.uniform(0.8, 1.25)) + 0.5 + float(rng.uniform(-20, 20)) / 255.0
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def zoom(
    img: np.ndarray, boxes: np.ndarray, rng: np.random.Generator, max_zoom: float, *, masks: np.ndarray | None = None
) -> tuple:
    """Crop a window ``1 / z`` of the image (``z`` in ``[1, max_zoom]``), holding every box whole when
    it can; boxes are shifted (and clipped). The caller's letterbox resizes the crop up. With
    ``masks`` (``(N, H, W)`` bool) they are cropped alike and returned third."""
    if masks is not None:
        crop, shifted, window = _zoom(img, boxes, rng, max_zoom)
        x0, y0, cw, ch = window
        return crop, shifted, np.ascontiguousarray(masks[:, y0 : y0 + ch, x0 : x0 + cw])
    return _zoom(img, boxes, rng, max_zoom)[:2]


def _zoom(
    img: np.ndarray, boxes: np.ndarray, rng: np.random.Generator, max_zoom: float
) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
    h, w = img.shape[:2]
    whole = (0, 0, w, h)
    z = float(rng.uniform(1.0, max_zoom))
    ch, cw = max(8, round(h / z)), max(8, round(w / z))
    if len(boxes):
        bx0, by0 = boxes[:, 0].min(), boxes[:, 1].min()
        bx1, by1 = boxes[:, 2].max(), boxes[:, 3].max()
        if bx1 - bx0 > cw or by1 - by0 > ch:
            return img, boxes, whole  # the boxes do not fit in the window: no zoom
        lo_x, hi_x = int(max(0, np.ceil(bx1 - cw))), int(min(bx0, w - cw))
        lo_y, hi_y = int(max(0, np.ceil(by1 - ch))), int(min(by0, h - ch))
    else:
        lo_x, hi_x, lo_y, hi_y = 0, w - cw, 0, h - ch
    if hi_x < lo_x or hi_y < lo_y:
        return img, boxes, whole
    x0, y0 = int(rng.integers(lo_x, hi_x + 1)), int(rng.integers(lo_y, hi_y + 1))
    crop = np.ascontiguousarray(img[y0 : y0 + ch, x0 : x0 + cw])
    shifted = boxes - np.array([x0, y0, x0, y0], np.float64)
    shifted[:, 0::2] = shifted[:, 0::2].clip(0, cw)
    shifted[:, 1::2] = shifted[:, 1::2].clip(0, ch)
    return crop, shifted, (x0, y0, cw, ch)


def displacement_field(h: int, w: int, rng: np.random.Generator, *, std: float, sigma: float) -> torch.Tensor:
    """A smooth random displacement field in torchvision's layout: FloatTensor ``(1, h, w, 2)`` (x, y), in
    the normalised units of ``torchvision.transforms.v2.functional.elastic`` (2 / side per pixel).

    As ``v2.ElasticTransform`` draws it — uniform noise in [-1, 1] blurred by a Gaussian of ``sigma``
    pixels — but blurred separably on a grid coarser by ``sigma / 4`` and upsampled (its 2D
    ``8 sigma + 1`` kernel takes seconds per 512-px image), then scaled so that the displacement's
    standard deviation is ``std`` pixels.
    """
    f = max(1, int(sigma // 4))
    ch, cw = -(-h // f), -(-w // f)
    noise = rng.uniform(-1.0, 1.0, size=(2, ch, cw))
    smooth = ndimage.gaussian_filter(noise, sigma=(0, sigma / f, sigma / f), mode="reflect", truncate=4.0)
    field = torch.from_numpy(smooth.astype(np.float32))[None]
    if f > 1:
        field = torch.nn.functional.interpolate(field, size=(h, w), mode="bilinear", align_corners=False)
    field = field * (std / max(float(field.std()), 1e-12))
    field = field * torch.tensor([2.0 / w, 2.0 / h]).view(1, 2, 1, 1)
    return field.permute(0, 2, 3, 1).contiguous()


def elastic(
    img: np.ndarray,
    boxes: np.ndarray,
    masks: list[np.ndarray | None],
    rng: np.random.Generator,
    *,
    displacement: float,
    sigma: float,
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray | None], np.ndarray]:
    """Deform an image, its objects' masks and boxes by one smooth random displacement field
    (:func:`displacement_field`) with torchvision's elastic kernels
    (``torchvision.transforms.v2.functional.elastic`` on ``tv_tensors`` Image, Mask and BoundingBoxes).

    Args:
        img: uint8 ``(H, W[, C])`` model pixels.
        boxes: ``(N, 4)`` xyxy on pixel edges.
        masks: ``N`` entries: the object's ``(H, W)`` bool mask, or None (a box without a mask).
        rng: the draw of the field.
        displacement: the displacement's standard deviation, as a fraction of the long side.
        sigma: the field's smoothness (Gaussian sigma), as a fraction of the long side.

    Returns:
        ``(image, boxes (M, 4), masks (M entries), keep)``, ``keep`` the ``(M,)`` indices of the
        objects kept. An object with a mask gets the tight box of its deformed mask (pixel edges:
        ``x1`` = last column + 1) and is dropped when the mask vanishes; a box without a mask is
        deformed by torchvision (its corners moved: approximate) and dropped when under a pixel wide.
    """
    h, w = img.shape[:2]
    n = len(boxes)
    if len(masks) != n:
        raise ValueError(f"elastic: {n} boxes but {len(masks)} masks")
    if displacement <= 0 or sigma <= 0:
        return img, boxes, masks, np.arange(n)
    field = displacement_field(h, w, rng, std=displacement * max(h, w), sigma=sigma * max(h, w))
    image = tv_tensors.Image(
        torch.from_numpy(np.ascontiguousarray(img if img.ndim == 3 else img[..., None])).permute(2, 0, 1)
    )
    out_img = TF.elastic(image, field).permute(1, 2, 0).numpy()
    out_img = np.ascontiguousarray(out_img if img.ndim == 3 else out_img[..., 0])
    bbs = TF.elastic(
        tv_tensors.BoundingBoxes(
            torch.as_tensor(np.asarray(boxes, np.float32).reshape(-1, 4)), format="XYXY", canvas_size=(h, w)
        ),
        field,
    )
    with_mask = [i for i in range(n) if masks[i] is not None]
    present = [m for m in masks if m is not None]  # the masks of with_mask, in that order
    stack = (
        TF.elastic(tv_tensors.Mask(torch.from_numpy(np.stack(present).astype(np.uint8))), field).numpy().astype(bool)
        if present
        else None
    )
    out_boxes, out_masks, keep = [], [], []
    for i in range(n):
        if masks[i] is not None:
            assert stack is not None  # built from this mask and the others present
            m = stack[with_mask.index(i)]
            ys, xs = np.nonzero(m)
            if ys.size == 0:
                continue
            out_boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
            out_masks.append(m)
        else:
            b = bbs[i].numpy().astype(np.float64)
            if b[2] - b[0] < 1 or b[3] - b[1] < 1:
                continue
            out_boxes.append(b)
            out_masks.append(None)
        keep.append(i)
    return out_img, np.asarray(out_boxes, np.float64).reshape(-1, 4), out_masks, np.asarray(keep, dtype=np.int64)
