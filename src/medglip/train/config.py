"""``TrainConfig``: how to train, saved as ``RUN/train_config.json`` beside every checkpoint."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from .augment import AugmentConfig

#: Model parts ``TrainConfig.freeze`` can keep fixed.
FREEZABLE = ("image_backbones", "text_encoder")


@dataclass(frozen=True)
class TrainConfig:
    """How to train. Length: give ``max_steps`` or ``epochs`` (neither: 1000 steps).

    Attributes:
        preset: the ``medglip.model.PRESETS`` entry of a new model (ignored on resume: the
            checkpoint's ModelConfig is used).
        init_from: start from the weights of this checkpoint folder (fine-tuning; ``preset`` and
            ``model_overrides`` are then ignored) instead of the preset's initial weights.
        max_steps: optimizer steps in all.
        epochs: passes over the split (converted to steps per process).
        batch_size: images per process per step.
        model_overrides: ModelConfig fields changed from the preset, as ``(name, value)`` pairs
            (e.g. ``(("image_size", 256),)``); ignored on resume.
        lr: peak learning rate of the image side, fusion and head.
        text_lr_factor: the text encoder's rate is ``lr * text_lr_factor`` (None: the model config's
            ``text_lr_factor`` hint).
        weight_decay: AdamW decay (not applied to biases, norms, 1-D parameters).
        warmup_steps: linear warm-up from ~0 to the peak rate.
        min_lr_ratio: the cosine decays to ``lr * min_lr_ratio`` at the last step.
        grad_clip: clip the global gradient norm to this (None or 0: no clipping).
        checkpoint_every: write a resumable checkpoint every N steps (and always at the end).
        keep_last: how many step checkpoints to keep.
        log_every: log line / PNG refresh every N steps (the CSV gets every step).
        seed: seed of the model initialisation, data order and augmentation.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:1`` ... (under torchrun the local rank picks the GPU).
        amp: ``auto`` (bf16 on CUDA when supported, else fp16 with a GradScaler; none on CPU),
            ``bf16``, ``fp16`` (CUDA only) or ``none``.
        num_workers: DataLoader worker processes per rank.
        split: the dataset split to train on.
        negatives_per_image: known-absent phrases added to each prompt (see ``medglip.train.data``).
        negative_vocabulary: ``dataset`` or ``ontology`` (also the ontology's terms of the body
            regions a case cannot show).
        flip_prob: horizontal-flip probability (left/right phrases swapped).
        min_scale: scale-jitter lower bound (1.0: off).
        zoom_prob, max_zoom: zoom-in augmentation (a random crop holding the boxes).
        copy_paste_prob, paste_scale: lesion copy-paste (``medglip.train.augment``).
        intensity_prob: contrast / brightness / gamma jitter.
        coarse_phrase_prob: hierarchical phrases: a lesion asked by a coarser lesion term
            (:class:`~medglip.train.augment.AugmentConfig`); its coarser terms count as trained phrases.
        elastic_prob, elastic_displacement, elastic_sigma: elastic deformation of the image with its
            masks and boxes (``medglip.train.augment.elastic``; displacement std and smoothness as
            fractions of the image's long side). Off by default.
        ema_decay: keep an exponential moving average of the weights (with a warm-up: the decay at
            step t is ``min(ema_decay, (1 + t) / (10 + t))``) and publish it as the run's model;
            None: publish the raw weights.
        source_weights: ``((source, weight), ...)``: a source's share of the sampled images (its
            images share it); overrides the weights a recipe recorded (default 1 per source).
        modality_weights: ``((modality, weight), ...)`` multiplying the images' weights.
        Batches hold one modality each (``medglip.train.sampling``).
        contrastive_weight: weight of GLIPv2's inter-image region–word contrastive loss
            (``loss_contrast``, :mod:`medglip.model.contrast`); 0: off.
        contrastive_temperature: its temperature τ.
        mlm_weight: weight of masked language modelling on the prompts (``loss_mlm``); > 0 gives a
            new model an MLM head (``ModelConfig.mlm_head``).
        mlm_probability: the share of real prompt tokens masked.
        mask_weight: weight of the mask head's loss (``loss_mask``) on the dataset's masks; > 0 gives
            a new model a mask head (``ModelConfig.mask_head``), so it grounds masks by itself.
        mask_box_jitter: half of the true boxes the mask head learns from are jittered by up to this
            fraction of their size.
        freeze: model parts whose weights stay as they start (:data:`FREEZABLE`): ``image_backbones``
            (the pretrained image encoders; GLIP's few-shot settings keep them, and with few cases
            there are fewer weights to fit) and ``text_encoder``. A frozen part also stays in eval mode.
    """

    preset: str = "default"
    model_overrides: tuple[tuple[str, Any], ...] = ()
    init_from: str | None = None
    max_steps: int | None = None
    epochs: int | None = None
    batch_size: int = 8
    lr: float = 1e-4
    text_lr_factor: float | None = None
    weight_decay: float = 0.05
    warmup_steps: int = 100
    min_lr_ratio: float = 0.01
    grad_clip: float | None = 1.0
    checkpoint_every: int = 500
    keep_last: int = 2
    log_every: int = 10
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"
    num_workers: int = 0
    split: str = "train"
    negatives_per_image: int = 8
    negative_vocabulary: str = "ontology"
    flip_prob: float = 0.5
    min_scale: float = 0.8
    zoom_prob: float = 0.3
    max_zoom: float = 1.6
    copy_paste_prob: float = 0.5
    paste_scale: tuple[float, float] = (0.7, 2.5)
    intensity_prob: float = 0.5
    elastic_prob: float = 0.0
    coarse_phrase_prob: float = 0.0
    elastic_displacement: float = 0.01
    elastic_sigma: float = 0.05
    ema_decay: float | None = 0.998
    source_weights: tuple[tuple[str, float], ...] = ()
    modality_weights: tuple[tuple[str, float], ...] = ()
    contrastive_weight: float = 0.0
    contrastive_temperature: float = 0.07
    mlm_weight: float = 0.0
    mlm_probability: float = 0.15
    mask_weight: float = 1.0
    mask_box_jitter: float = 0.1
    freeze: tuple[str, ...] = ()

    def augment_config(self) -> AugmentConfig:
        """The augmentation settings of this config (the fields the two share; the rest keep
        :class:`AugmentConfig`'s defaults)."""
        mine = {f.name for f in fields(self)}
        shared: dict[str, Any] = {
            f.name: tuple(v) if isinstance(v := getattr(self, f.name), list) else v
            for f in fields(AugmentConfig)
            if f.name in mine
        }
        return AugmentConfig(**shared)

    def __post_init__(self) -> None:
        if self.max_steps is not None and self.epochs is not None:
            raise ValueError("give max_steps or epochs, not both")
        if (self.max_steps is not None and self.max_steps < 1) or (self.epochs is not None and self.epochs < 1):
            raise ValueError("max_steps / epochs must be >= 1")
        if self.amp not in ("auto", "bf16", "fp16", "none"):
            raise ValueError(f"amp must be auto, bf16, fp16 or none, not {self.amp!r}")
        if self.batch_size < 1 or self.checkpoint_every < 1 or self.log_every < 1:
            raise ValueError("batch_size, checkpoint_every and log_every must be >= 1")
        if not 0.0 <= self.elastic_prob <= 1.0:
            raise ValueError(f"elastic_prob must be in [0, 1], not {self.elastic_prob}")
        if not 0.0 <= self.coarse_phrase_prob <= 1.0:
            raise ValueError(f"coarse_phrase_prob must be in [0, 1], not {self.coarse_phrase_prob}")
        if self.elastic_displacement < 0 or self.elastic_sigma <= 0:
            raise ValueError("elastic_displacement must be >= 0 and elastic_sigma > 0")
        if min(self.contrastive_weight, self.mlm_weight, self.mask_weight, self.mask_box_jitter) < 0:
            raise ValueError("loss weights and mask_box_jitter must be >= 0")
        unknown = sorted(set(self.freeze) - set(FREEZABLE))
        if unknown:
            raise ValueError(f"freeze: unknown part(s) {unknown}; choose from {list(FREEZABLE)}")
        if self.contrastive_temperature <= 0 or not 0 < self.mlm_probability < 1:
            raise ValueError("contrastive_temperature must be > 0 and mlm_probability in (0, 1)")
