"""The image side: modality-routed backbones + a shared FPN.

``per_modality`` (Med-GLIP): one backbone per modality in ``own_encoder_modalities`` plus, when some
modalities have none, a ``shared`` backbone for those. A batch is split by encoder, each group runs
through its own backbone, and the features are put back in batch order before the shared FPN.
``shared``: one backbone; a learned modality embedding (zero-initialised) is added to every FPN
level. All backbones exist from construction (no lazy creation: a fixed parameter set keeps
optimizers, checkpoints and DDP simple); in ``per_modality`` mode a batch without some modality
leaves that encoder without gradients, so DDP needs ``find_unused_parameters=True``.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import ExtraFPNBlock

from .backbone import build_backbone
from .config import TINYVIT_BACKBONE, ModelConfig
from .tinyvit import build_tinyvit


@runtime_checkable
class FeatureBackbone(Protocol):
    """What the encoder needs of a backbone besides being a module: its maps' channels and strides."""

    channels: list[int]
    strides: list[int]


def build_image_backbone(config: ModelConfig, *, load_weights: bool = True) -> nn.Module:
    """The backbone ``config.backbone`` names: LiteMedSAM's TinyViT (:mod:`medglip.model.tinyvit`) or a
    timm ``features_only`` network (:mod:`medglip.model.backbone`). Either has ``channels`` and
    ``strides`` (lists, one per returned map) and returns NCHW maps, lowest stride first."""
    if config.backbone == TINYVIT_BACKBONE:
        return build_tinyvit(config, load_weights=load_weights)
    return build_backbone(config, load_weights=load_weights)


class ExtraLevels(ExtraFPNBlock):
    """P6, P7 ... from the last FPN output by stride-2 3×3 convolutions (ReLU in between)."""

    def __init__(self, *, channels: int, count: int) -> None:
        super().__init__()
        convs = [nn.Conv2d(channels, channels, 3, stride=2, padding=1) for _ in range(count)]
        for c in convs:
            nn.init.kaiming_uniform_(c.weight, a=1)
            if c.bias is not None:
                nn.init.zeros_(c.bias)
        self.convs = nn.ModuleList(convs)

    def forward(self, results: list[torch.Tensor], x: list[torch.Tensor], names: list[str]):
        last = results[-1]
        for i, conv in enumerate(self.convs):
            last = conv(last if i == 0 else F.relu(last))
            results.append(last)
            names.append(f"p{len(names)}")
        return results, names


class ImageEncoder(nn.Module):
    """Backbone(s) + FPN.

    Forward:
        images: FloatTensor (B, 3, S, S); modality: LongTensor (B,) index into config.modalities
            (best on the CPU: the encoders are chosen there, without waiting for the device).
        returns: list of ``fpn_levels`` FloatTensor (B, fpn_channels, S/stride_l, S/stride_l).
    Attributes:
        strides: list of the levels' strides.
    """

    def __init__(
        self, config: ModelConfig, *, backbones: dict[str, nn.Module] | None = None, load_weights: bool = True
    ) -> None:
        super().__init__()
        self.config = config
        if backbones is None:
            backbones = {k: build_image_backbone(config, load_weights=load_weights) for k in config.encoder_keys}
        self.backbones = nn.ModuleDict(backbones)
        first = next(iter(self.backbones.values()))
        if not isinstance(first, FeatureBackbone):
            raise TypeError(f"image backbone {type(first).__name__} has no channels and strides (one per map)")
        self.in_strides = list(first.strides)
        extra = config.fpn_levels - len(first.channels)
        self.strides = self.in_strides + [self.in_strides[-1] * 2 ** (i + 1) for i in range(extra)]
        extra_blocks = ExtraLevels(channels=config.fpn_channels, count=extra) if extra else None
        self.fpn = FeaturePyramidNetwork(first.channels, config.fpn_channels, extra_blocks=extra_blocks)
        self.modality_embed = (
            nn.Embedding(len(config.modalities), config.fpn_channels) if config.image_encoders == "shared" else None
        )
        if self.modality_embed is not None:
            nn.init.zeros_(self.modality_embed.weight)
        routes = [config.encoder_for(i) for i in range(len(config.modalities))]
        # modality index → backbone index, kept on the CPU (a buffer would move to the GPU with the model)
        self.routes = torch.tensor([list(self.backbones).index(r) for r in routes])

    def run_backbones(self, images: torch.Tensor, modality: torch.Tensor) -> list[torch.Tensor]:
        keys = list(self.backbones)
        if len(keys) == 1:
            return self.backbones[keys[0]](images)
        # routing is decided on the CPU: a modality tensor on the device would make every batch wait
        enc = self.routes[modality.cpu()]
        present = torch.unique(enc).tolist()
        if len(present) == 1:
            return self.backbones[keys[present[0]]](images)
        outs: list[torch.Tensor] | None = None
        for e in present:
            idx = torch.nonzero(enc == e).squeeze(1).to(images.device, non_blocking=True)
            feats = self.backbones[keys[e]](images[idx])
            if outs is None:
                outs = [f.new_zeros((images.shape[0],) + f.shape[1:]) for f in feats]
            outs = [o.index_copy(0, idx, f) for o, f in zip(outs, feats, strict=True)]
        assert outs is not None
        return outs

    def forward(self, images: torch.Tensor, modality: torch.Tensor) -> list[torch.Tensor]:
        feats = self.run_backbones(images, modality)
        pyramid = list(self.fpn(OrderedDict((str(i), f) for i, f in enumerate(feats))).values())
        if self.modality_embed is not None:
            emb = self.modality_embed(modality.to(pyramid[0].device))[:, :, None, None].to(pyramid[0].dtype)
            pyramid = [p + emb for p in pyramid]
        return pyramid
