"""``GroundingModel``: modality-aware GLIP-style phrase grounding (the contract of docs/model_api.md).

images ──► ImageEncoder (per-modality backbones or shared + modality embedding) ──► FPN levels ─┐
prompts ─► shared text encoder ─► Linear(H → d) ───────────────────────────────────────────────┤
                                                       Fusion (bidirectional cross-attention) ◄┘
                                                       GroundingHead ─► logits / ltrb / centerness
training: ATSS assignment + focal / GIoU / centerness losses (+ modality CE), and the GLIPv2 tasks
          switched on by ``model.tasks`` (:class:`AuxiliaryTasks`): inter-image region–word contrast,
          masked language modelling, mask head
eval:     score = sqrt(alignment · sigmoid(centerness)), alignment = the mean (config.score_agg) of the
          phrase's token probabilities; candidates above config.score_threshold (on the alignment,
          config.threshold_on); NMS per phrase
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import nn
from torchvision.ops import batched_nms, clip_boxes_to_image

from .atss import decode, make_anchors
from .config import ModelConfig
from .encoder import ImageEncoder
from .fusion import Fusion, FusionInput
from .head import GroundingHead
from .losses import assign, grounding_losses
from .mask_head import MaskHead
from .mlm import MLMHead
from .modality import ModalityClassifier, modality_loss
from .phrase_offsets import PhraseOffsets
from .prompt import Prompt, build_prompts, token_batch
from .tasks import AuxiliaryTasks, contrast_loss, mask_head_loss, mlm_loss_of
from .text import build_text_encoder, pretrained_mlm_head_state, text_hidden_size

log = logging.getLogger(__name__)


def image_hw(images: torch.Tensor) -> tuple[int, int]:
    """``(H, W)`` of a ``(..., H, W)`` image batch: the input side the detections are in."""
    h, w = images.shape[-2:]
    return int(h), int(w)


@dataclass
class ImageFeatures:
    """Output of :meth:`GroundingModel.encode_images`: the FPN levels (B, d, H_l, W_l) and, when the
    box branch reads them (``config.box_features == "image"``), its ``ltrb`` (B, A, 4) and
    ``centerness`` (B, A) — computed once per image, reused by every prompt chunk; ``images`` the
    input (B, 3, S, S) (the mask head refines with its pixels); ``fusion_input`` (eval only) the
    prompt-independent part of fusion (:meth:`Fusion.prepare`), also reused by every chunk."""

    levels: list[torch.Tensor]
    ltrb: torch.Tensor | None = None
    centerness: torch.Tensor | None = None
    images: torch.Tensor | None = None
    fusion_input: FusionInput | None = None


@dataclass
class TextFeatures:
    """Output of :meth:`GroundingModel.encode_text` (cacheable; pass back as ``text_features=``).

    Attributes:
        hidden: FloatTensor (B, T, H) last hidden state of the text encoder (T = longest prompt).
        mask: BoolTensor (B, T), True for real tokens.
        phrase_token_masks: per image BoolTensor (P_b, T_b), T_b <= T.
    """

    hidden: torch.Tensor
    mask: torch.Tensor
    phrase_token_masks: list[torch.Tensor]

    def detach(self) -> TextFeatures:
        return TextFeatures(self.hidden.detach(), self.mask, self.phrase_token_masks)


@dataclass(frozen=True)
class HeadOutput:
    """What fusion + the head give for B images and their prompts (:meth:`GroundingModel._head`).

    Attributes:
        out: the head's dict: ``logits`` (B, A, T), ``ltrb`` (B, A, 4), ``centerness`` (B, A) (+
            ``regions`` / ``tokens`` embeddings when asked for).
        centres: (A, 2) anchor centres in input pixels; anchors: (A, 4) anchor boxes;
        level_sizes: anchors per FPN level; text_mask: BoolTensor (B, T) of real tokens;
        fused: the fused FPN levels (B, d, H_l, W_l), what the mask head reads.
    """

    out: dict[str, torch.Tensor]
    centres: torch.Tensor
    anchors: torch.Tensor
    level_sizes: list[int]
    text_mask: torch.Tensor
    fused: list[torch.Tensor]


class GroundingModel(nn.Module):
    """Phrase grounding model.

    Args:
        config: :class:`ModelConfig`.
        text_encoder, tokenizer (keyword-only): inject a ready text encoder / tokenizer (both or
            neither); otherwise built from ``config``.
        backbones: inject image backbones, ``{encoder key: Backbone}`` (keys = config.encoder_keys).
        load_weights: False builds every part with random weights (used before loading a
            checkpoint); True loads the pretrained weights ``config`` names.
        tasks: the auxiliary training losses and their weights (:class:`AuxiliaryTasks`; default:
            the model's own heads at weight 1, no contrast); the trainer sets ``model.tasks``.

    Forward ``model(images, modality, prompts, targets=None, *, text_features=None)``:
        images: FloatTensor (B, 3, S, S) from ``medglip.core.pipeline.to_tensor``.
        modality: LongTensor (B,) index into ``config.modalities``; -1 entries (or None for all)
            are predicted by the modality classifier.
        prompts: list of B :class:`Prompt` (the same object may repeat; it is encoded once).
            May be None when ``text_features`` is given.
        targets: training only; per image {"boxes": FloatTensor (N, 4) xyxy input pixels,
            "phrase_ids": LongTensor (N,) into that image's ``prompt.phrases``}; N may be 0; with the
            mask loss also "masks": BoolTensor (N, S, S) (and optionally "mask_valid": (N,) bool).
        text_features: :class:`TextFeatures` from :meth:`encode_text` (skips the text encoder).

    Returns:
        training: dict of weighted scalar losses {"loss_cls": (), "loss_box": (), "loss_ctr": (),
            "loss_modality": ()} (the last only when ``modality_loss_weight > 0``), plus
            "loss_contrast", "loss_mlm", "loss_mask" when their ``model.tasks`` weight is > 0; the
            total loss is their sum.
        eval: list of B dicts {"boxes": FloatTensor (K, 4) xyxy input pixels, "scores": (K,),
            "phrase_ids": LongTensor (K,)}, K <= ``detections_per_image``, sorted by score.
    """

    def __init__(
        self,
        config: ModelConfig,
        *,
        text_encoder: nn.Module | None = None,
        tokenizer=None,
        backbones: dict[str, nn.Module] | None = None,
        load_weights: bool = True,
        tasks: AuxiliaryTasks | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        if (text_encoder is None) != (tokenizer is None):
            raise ValueError("inject text_encoder and tokenizer together")
        if text_encoder is None:
            text_encoder, tokenizer = build_text_encoder(config, weights=None if load_weights else "none")
        self.tokenizer = tokenizer
        self.text_encoder = text_encoder
        d = config.fpn_channels
        self.image_encoder = ImageEncoder(config, backbones=backbones, load_weights=load_weights)
        self.text_proj = nn.Linear(text_hidden_size(text_encoder), d)
        self.phrase_offsets = (
            PhraseOffsets(phrases=config.tuned_phrases, hidden=text_hidden_size(text_encoder))
            if config.tuned_phrases
            else None
        )
        self.fusion = Fusion(
            dim=d, layers=config.fusion_layers, heads=config.fusion_heads, layer_scale=config.fusion_layer_scale
        )
        self.head = GroundingHead(
            channels=d,
            convs=config.head_convs,
            groups=config.head_groups,
            levels=config.fpn_levels,
            prior_prob=config.prior_prob,
            anchor_scale=config.anchor_scale,
            alignment=config.alignment,
        )
        self.modality_classifier = ModalityClassifier(num_modalities=len(config.modalities))
        self.mask_head = (
            MaskHead(
                channels=d,
                levels=config.mask_levels,
                roi_size=config.mask_roi_size,
                convs=config.mask_convs,
                groups=config.head_groups,
                image_skip=config.mask_image_skip,
            )
            if config.mask_head
            else None
        )
        self.mlm_head = None
        if config.mlm_head:
            tcfg = getattr(text_encoder, "config", None)
            self.mlm_head = MLMHead(
                hidden_size=text_hidden_size(text_encoder),
                # a Hugging Face model: nn.Module types the method as Tensor | Module
                vocab_size=text_encoder.get_input_embeddings().num_embeddings,  # type: ignore[operator]
                activation=getattr(tcfg, "hidden_act", "gelu"),
                eps=float(getattr(tcfg, "layer_norm_eps", 1e-12)),
            )
            state = pretrained_mlm_head_state(config) if load_weights else None
            if state is not None:
                self.mlm_head.load_pretrained(state)
                log.info("MLM head initialised from the text encoder's pretrained head")
            elif load_weights:
                log.info(
                    "the text encoder %r has no pretrained MLM head: its decoder is tied to the word "
                    "embeddings, the transform starts from BERT's initialisation",
                    config.text_encoder,
                )
        self.tasks = tasks if tasks is not None else AuxiliaryTasks.for_config(config)

    # ------------------------------------------------------------------ helpers
    @property
    def strides(self) -> list[int]:
        return self.image_encoder.strides

    def build_prompts(self, phrases: list[str]) -> list[Prompt]:
        """``build_prompts(phrases, self.tokenizer, config.max_text_len)``."""
        return build_prompts(phrases, self.tokenizer, self.config.max_text_len)

    def encode_text(self, prompts: list[Prompt]) -> TextFeatures:
        """Run the shared text encoder once per distinct prompt object and expand to the batch."""
        device = self.text_proj.weight.device
        uniq: dict[int, int] = {}
        order = []
        for p in prompts:
            order.append(uniq.setdefault(id(p), len(uniq)))
        distinct, ids, att = token_batch(prompts)
        ids, att = ids.to(device), att.to(device)
        hidden = self.text_encoder(input_ids=ids, attention_mask=att).last_hidden_state
        if self.phrase_offsets is not None:  # prompt tuning (ModelConfig.tuned_phrases)
            hidden = self.phrase_offsets(hidden, distinct)
        idx = torch.tensor(order, device=device)
        return TextFeatures(
            hidden=hidden[idx], mask=att[idx].bool(), phrase_token_masks=[p.phrase_token_mask for p in prompts]
        )

    def classify_modality(self, images: torch.Tensor) -> torch.Tensor:
        """(B, M) modality logits for preprocessed images (B, 3, S, S)."""
        return self.modality_classifier(images)

    def _resolve_modality(self, images: torch.Tensor, modality: torch.Tensor | None) -> torch.Tensor:
        """The modality index of every image as a CPU LongTensor (B,) (-1 / None: classified).

        Kept on the CPU, so routing images to their encoders never waits for the device (a modality
        tensor given on the device costs one copy back)."""
        b = images.shape[0]
        mod = torch.full((b,), -1, dtype=torch.long) if modality is None else modality.detach().to("cpu", torch.long)
        if bool((mod >= len(self.config.modalities)).any()):
            raise ValueError(f"modality index out of range 0..{len(self.config.modalities) - 1}")
        unknown = mod < 0
        if bool(unknown.any()):
            with torch.no_grad():
                pred = self.classify_modality(images[unknown.to(images.device)]).argmax(1)
            mod = mod.clone()
            mod[unknown] = pred.cpu()
        return mod

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        images: torch.Tensor,
        modality: torch.Tensor | None,
        prompts: list[Prompt] | None,
        targets: list[dict[str, torch.Tensor]] | None = None,
        *,
        text_features: TextFeatures | None = None,
    ):
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, S, S), got {tuple(images.shape)}")
        b = images.shape[0]
        if text_features is None:
            if prompts is None or len(prompts) != b:
                raise ValueError(f"need {b} prompts (one per image), got {None if prompts is None else len(prompts)}")
            text_features = self.encode_text(prompts)
        if text_features.hidden.shape[0] != b:
            raise ValueError("text_features batch size differs from images")
        given = modality
        feats = self.encode_images(images, modality)
        if not self.training:
            return self.detect(feats, text_features, image_hw(images))
        tasks = self.tasks
        h = self._head(feats, text_features, embeddings=tasks.contrastive_weight > 0)
        out, fused = h.out, h.fused
        if targets is None or len(targets) != b:
            raise ValueError("training needs one target dict per image")
        c = self.config
        assignments = assign(h.anchors, h.level_sizes, targets, c.atss_topk)
        losses = grounding_losses(
            logits=out["logits"],
            ltrb=out["ltrb"],
            centerness=out["centerness"],
            centres=h.centres,
            anchors=h.anchors,
            level_sizes=h.level_sizes,
            targets=targets,
            phrase_token_masks=text_features.phrase_token_masks,
            text_mask=h.text_mask,
            topk=c.atss_topk,
            alpha=c.focal_alpha,
            gamma=c.focal_gamma,
            giou_weighting=c.giou_weighting,
            assignments=assignments,
        )
        losses = {
            "loss_cls": losses["loss_cls"] * c.cls_loss_weight,
            "loss_box": losses["loss_box"] * c.box_loss_weight,
            "loss_ctr": losses["loss_ctr"] * c.ctr_loss_weight,
        }
        if c.modality_loss_weight > 0:
            mod_target = (
                given.to(images.device).long()
                if given is not None
                else torch.full((b,), -1, dtype=torch.long, device=images.device)
            )
            losses["loss_modality"] = modality_loss(self.classify_modality(images), mod_target) * c.modality_loss_weight
        if tasks.contrastive_weight > 0:
            losses["loss_contrast"] = (
                contrast_loss(
                    tasks,
                    regions=out["regions"],
                    tokens=out["tokens"],
                    assignments=assignments,
                    targets=targets,
                    prompts=prompts,
                    phrase_token_masks=text_features.phrase_token_masks,
                )
                * tasks.contrastive_weight
            )
        if tasks.mlm_weight > 0:
            if self.mlm_head is None:
                raise ValueError("the MLM loss needs a model with an MLM head (ModelConfig.mlm_head=True)")
            if prompts is None:
                raise ValueError("the MLM loss needs the prompts (not only text_features)")
            losses["loss_mlm"] = mlm_loss_of(self, prompts, tasks.mlm_probability) * tasks.mlm_weight
        if tasks.mask_weight > 0:
            if self.mask_head is None:
                raise ValueError("the mask loss needs a model with a mask head (ModelConfig.mask_head=True)")
            losses["loss_mask"] = (
                mask_head_loss(
                    self.mask_head, fused, feats.images, targets, image_hw(images), jitter=tasks.mask_box_jitter
                )
                * tasks.mask_weight
            )
        return losses

    def encode_images(self, images: torch.Tensor, modality: torch.Tensor | None) -> ImageFeatures:
        """The image side alone: it does not depend on the prompt, so a caller with several prompt
        chunks runs it once and :meth:`detect` once per chunk.

        Args:
            images: FloatTensor (B, 3, S, S); modality: LongTensor (B,) (-1 / None: classified).

        Returns:
            :class:`ImageFeatures`: ``fpn_levels`` FloatTensors (B, fpn_channels, S / stride, S / stride)
            and, with ``config.box_features == "image"``, the boxes ``ltrb`` (B, A, 4) and
            ``centerness`` (B, A).
        """
        levels = self.image_encoder(images, self._resolve_modality(images, modality))
        # at inference the first fusion layer's image side is shared by every prompt chunk
        prepared = self.fusion.prepare(levels) if not self.training and len(self.fusion.layers) else None
        if self.config.box_features == "image":
            ltrb, ctr = self.head.boxes(levels, self.strides)
            return ImageFeatures(levels, ltrb, ctr, images=images, fusion_input=prepared)
        return ImageFeatures(levels, images=images, fusion_input=prepared)

    def _head(self, img: ImageFeatures, text_features: TextFeatures, *, embeddings: bool = False) -> HeadOutput:
        """Fusion and the head on features of :meth:`encode_images` (training and inference)."""
        text = self.text_proj(text_features.hidden)
        mask = text_features.mask.to(img.levels[0].device)
        feats, text = self.fusion(img.levels, text, mask, prepared=img.fusion_input)
        boxes = (img.ltrb, img.centerness) if img.ltrb is not None else None
        out = self.head(feats, text, mask, self.strides, boxes=boxes, embeddings=embeddings)
        shapes = [tuple(f.shape[-2:]) for f in feats]
        centres, anchors, level_sizes = make_anchors(shapes, self.strides, self.config.anchor_scale, feats[0].device)
        return HeadOutput(
            out=out, centres=centres, anchors=anchors, level_sizes=level_sizes, text_mask=mask, fused=feats
        )

    @torch.no_grad()
    def detect(
        self, feats: ImageFeatures, text_features: TextFeatures, image_hw: tuple[int, int], *, masks: bool = False
    ) -> list[dict[str, torch.Tensor]]:
        """Fusion, head and post-processing on features of :meth:`encode_images` (eval only).

        Args:
            feats: the image features of B images; text_features: B prompts (:meth:`encode_text`);
            image_hw: the input side ``(S, S)``; masks: also the mask head's masks (needs one).

        Returns:
            B dicts {"boxes": (K, 4) xyxy input pixels, "scores": (K,), "phrase_ids": (K,)} (+ "masks":
            (K, M, M) probabilities over each box with ``masks=True``).
        """
        dets, fused = self.detect_with_features(feats, text_features, image_hw)
        if masks:
            probs = self.predict_masks(fused, feats.images, [d["boxes"] for d in dets], image_hw)
            for d, p in zip(dets, probs, strict=True):
                d["masks"] = p
        return dets

    @torch.no_grad()
    def detect_with_features(
        self, feats: ImageFeatures, text_features: TextFeatures, image_hw: tuple[int, int]
    ) -> tuple[list[dict[str, torch.Tensor]], list[torch.Tensor]]:
        """:meth:`detect` without masks, and the fused FPN levels (B, d, H_l, W_l) for
        :meth:`predict_masks` of the boxes a caller keeps."""
        if text_features.hidden.shape[0] != feats.levels[0].shape[0]:
            raise ValueError("text_features batch size differs from the images'")
        h = self._head(feats, text_features)
        return self.postprocess(h.out, h.centres, text_features.phrase_token_masks, image_hw), h.fused

    @torch.no_grad()
    def predict_masks(
        self,
        fused: list[torch.Tensor],
        images: torch.Tensor | None,
        boxes: list[torch.Tensor],
        image_hw: tuple[int, int],
    ) -> list[torch.Tensor]:
        """Mask probabilities of boxes from the mask head.

        Args:
            fused: fused FPN levels of B images (:meth:`detect_with_features`); images: their input
                (B, 3, S, S); boxes: per image (K_b, 4) xyxy input pixels; image_hw: ``(S, S)``.

        Returns:
            per image FloatTensor (K_b, M, M): probabilities over each box (paste them with
            :func:`medglip.model.mask_head.paste_masks`).

        Raises:
            ValueError: the model has no mask head.
        """
        if self.mask_head is None:
            raise ValueError("this model has no mask head (ModelConfig.mask_head is False)")
        probs = self.mask_head(fused, [bx.float() for bx in boxes], image_hw, images).float().sigmoid()
        return list(probs.split([len(bx) for bx in boxes]))

    def with_parts(self, *, mask_head: bool | None = None, mlm_head: bool | None = None) -> GroundingModel:
        """This model with a mask head / MLM head added (new, randomly initialised) or removed; the
        other weights are kept. ``self`` when nothing changes."""
        changes = {
            k: bool(v)
            for k, v in (("mask_head", mask_head), ("mlm_head", mlm_head))
            if v is not None and bool(v) != getattr(self.config, k)
        }
        if not changes:
            return self
        new = GroundingModel(
            self.config.replace(**changes), text_encoder=self.text_encoder, tokenizer=self.tokenizer, load_weights=False
        )
        missing, unexpected = new.load_state_dict(self.state_dict(), strict=False)
        bad = [k for k in missing if not k.startswith(("mask_head.", "mlm_head."))] + [
            k for k in unexpected if not k.startswith(("mask_head.", "mlm_head."))
        ]
        if bad:
            raise ValueError(f"weights do not carry over: {bad[:5]}")
        new.tasks = AuxiliaryTasks.for_config(new.config)
        return new.to(next(self.parameters()).device)

    @torch.no_grad()
    def postprocess(
        self, out: dict[str, torch.Tensor], centres: torch.Tensor, phrase_token_masks: list[torch.Tensor], image_hw
    ) -> list[dict[str, torch.Tensor]]:
        """Scores per phrase, threshold, pre-NMS top-k, NMS per phrase, final top-k."""
        c = self.config
        results = []
        for i, ptm in enumerate(phrase_token_masks):
            logits = out["logits"][i].float()  # (A, T)
            ptm = ptm.to(logits.device)
            probs = logits[:, : ptm.shape[1]].sigmoid()
            if c.score_agg == "mean":  # GLIP: the mean of the phrase's token probabilities
                weights = ptm.float() / ptm.float().sum(1, keepdim=True).clamp(min=1.0)  # (P, T)
                align = probs @ weights.T  # (A, P)
            else:
                align = torch.stack([probs[:, m].max(1).values for m in ptm], 1)  # (A, P)
            scores = (align * out["centerness"][i].float().sigmoid()[:, None]).sqrt()
            flat = scores.flatten()
            gate = align.flatten() if c.threshold_on == "alignment" else flat
            keep = torch.nonzero(gate > c.score_threshold).squeeze(1)
            if keep.numel() > c.pre_nms_top_k:
                keep = keep[flat[keep].topk(c.pre_nms_top_k).indices]
            a_idx, p_idx = keep // scores.shape[1], keep % scores.shape[1]
            boxes = decode(centres[a_idx], out["ltrb"][i, a_idx].float())
            boxes = clip_boxes_to_image(boxes, tuple(int(s) for s in image_hw))
            sc = flat[keep]
            k = batched_nms(boxes, sc, p_idx, c.nms_iou)[: c.detections_per_image]
            results.append({"boxes": boxes[k], "scores": sc[k], "phrase_ids": p_idx[k].long()})
        return results

    def with_tuned_phrases(self, phrases: list[str] | tuple[str, ...]) -> GroundingModel:
        """This model with a learned text-feature offset (zero at first) for each of ``phrases`` besides
        those it tunes already (``ModelConfig.tuned_phrases``); every other weight, and the offsets it
        has, are kept (the modules are shared with ``self``). ``self`` when nothing is new."""
        from ..core.text import phrase_key

        have = list(self.config.tuned_phrases)
        known = {phrase_key(p) for p in have}
        new = [p for p in dict.fromkeys(phrases) if phrase_key(p) not in known]
        if not new:
            return self
        model = GroundingModel(
            self.config.replace(tuned_phrases=tuple(have + new)),
            text_encoder=self.text_encoder,
            tokenizer=self.tokenizer,
            backbones=dict(self.image_encoder.backbones),
            load_weights=False,
        )
        state = {k: v for k, v in self.state_dict().items() if k != "phrase_offsets.offsets"}
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or set(missing) != {"phrase_offsets.offsets"}:
            lost = sorted(unexpected) + sorted(set(missing) - {"phrase_offsets.offsets"})
            raise ValueError(f"weights do not carry over: {lost}")
        if self.phrase_offsets is not None and model.phrase_offsets is not None:  # the new model tunes `have + new`
            with torch.no_grad():
                model.phrase_offsets.offsets[: len(have)] = self.phrase_offsets.offsets
        model.tasks = self.tasks
        return model.to(next(self.parameters()).device).train(self.training)

    def num_parameters(self) -> dict[str, int]:
        """Parameter counts by part (``total`` included)."""
        parts = {
            "image_encoder": self.image_encoder,
            "text_encoder": self.text_encoder,
            "fusion": self.fusion,
            "head": self.head,
            "modality_classifier": self.modality_classifier,
        }
        parts.update({k: m for k, m in (("mask_head", self.mask_head), ("mlm_head", self.mlm_head)) if m is not None})
        counts = {k: sum(p.numel() for p in m.parameters()) for k, m in parts.items()}
        counts["total"] = sum(p.numel() for p in self.parameters())
        return counts
