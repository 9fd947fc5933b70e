"""GLIPv2's auxiliary training tasks, as the :class:`~medglip.model.grounding.GroundingModel` computes
them in training mode: which ones and their weights (:class:`AuxiliaryTasks`, set by the trainer from
``TrainConfig``), and the glue from the model's intermediate outputs to each loss.

- ``loss_contrast``: inter-image region–word contrast (:mod:`.contrast`);
- ``loss_mlm``: masked language modelling on a masked copy of the prompts (:mod:`.mlm`);
- ``loss_mask``: the mask head's per-pixel BCE (:mod:`.mask_head`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..ontology import PhraseRelations
from .contrast import RegionWordContrast, phrase_embeddings
from .mask_head import MaskHead, mask_loss, mask_targets
from .mlm import mask_tokens, mlm_loss
from .prompt import token_batch


@dataclass(frozen=True)
class AuxiliaryTasks:
    """Which auxiliary losses the model computes in training, and their weights (0: off).

    Attributes:
        contrastive_weight: weight of ``loss_contrast``.
        contrastive_temperature: τ of its cosine similarities.
        mlm_weight: weight of ``loss_mlm`` (the model needs an MLM head).
        mlm_probability: the share of real prompt tokens masked.
        mask_weight: weight of ``loss_mask`` (the model needs a mask head; targets need "masks").
        mask_box_jitter: half of the ground-truth boxes the mask head learns from have their sides
            moved by up to this fraction of their size (detected boxes are not exact; the target is
            the true mask inside the moved box); 0: only the true boxes.
        relations: the ontology's phrase relations for the contrastive targets (default: built from
            the shipped ontology on first use).
    """

    contrastive_weight: float = 0.0
    contrastive_temperature: float = 0.07
    mlm_weight: float = 0.0
    mlm_probability: float = 0.15
    mask_weight: float = 0.0
    mask_box_jitter: float = 0.1
    relations: PhraseRelations | None = None

    @classmethod
    def for_config(cls, config: Any) -> AuxiliaryTasks:
        """The default of a model: its own heads trained at weight 1, no contrast."""
        return cls(mlm_weight=1.0 if config.mlm_head else 0.0, mask_weight=1.0 if config.mask_head else 0.0)


def contrast_loss(
    tasks: AuxiliaryTasks,
    *,
    regions: torch.Tensor,
    tokens: torch.Tensor,
    assignments: list[tuple[torch.Tensor, torch.Tensor]],
    targets: list[dict[str, torch.Tensor]],
    prompts: list[Any] | None,
    phrase_token_masks: list[torch.Tensor],
) -> torch.Tensor:
    """``loss_contrast`` (unweighted) from the head's region features (B, A, d), projected tokens
    (B, T, d) and the ATSS assignment of the positive anchors."""
    if prompts is None:
        raise ValueError("the contrastive loss needs the prompts (their phrases), not only text_features")
    relations = tasks.relations if tasks.relations is not None else _shipped_relations()
    feats, names = [], []
    for i, ((pos, gt_idx), tgt) in enumerate(zip(assignments, targets, strict=True)):
        if pos.numel() == 0:
            continue
        pids = tgt["phrase_ids"].to(pos.device).long()[gt_idx]
        feats.append(regions[i, pos])
        names += [prompts[i].phrases[int(p)] for p in pids.tolist()]
    region_feats = torch.cat(feats) if feats else regions.new_zeros(0, regions.shape[-1])
    emb = phrase_embeddings(tokens, phrase_token_masks)
    phrases = [p for prompt in prompts for p in prompt.phrases]
    loss = RegionWordContrast(relations=relations, temperature=tasks.contrastive_temperature)
    return loss(region_feats, names, emb, phrases) + regions.sum() * 0.0


_RELATIONS: PhraseRelations | None = None


def _shipped_relations() -> PhraseRelations:
    global _RELATIONS
    if _RELATIONS is None:
        from ..ontology import load_ontology

        _RELATIONS = PhraseRelations(load_ontology())
    return _RELATIONS


def mlm_loss_of(model: Any, prompts: list[Any], probability: float) -> torch.Tensor:
    """``loss_mlm`` (unweighted): the distinct prompts masked (:func:`mask_tokens`), encoded by the
    model's text encoder, their masked positions predicted by ``model.mlm_head``."""
    device = model.text_proj.weight.device
    _, ids, att = token_batch(prompts)
    tok = model.tokenizer
    if tok.mask_token_id is None:
        raise ValueError("the tokenizer has no [MASK] token: masked language modelling is not possible")
    emb = model.text_encoder.get_input_embeddings().weight
    masked, labels = mask_tokens(
        ids,
        att,
        special_ids=set(tok.all_special_ids),
        mask_id=int(tok.mask_token_id),
        vocab_size=int(emb.shape[0]),
        probability=probability,
    )
    masked, labels, att = masked.to(device), labels.to(device), att.to(device)
    hidden = model.text_encoder(input_ids=masked, attention_mask=att).last_hidden_state  # (D, T, H)
    sel = labels != -100
    return mlm_loss(model.mlm_head(hidden[sel], emb), labels[sel])


def _jitter(boxes: torch.Tensor, fraction: float, size: tuple[int, int]) -> torch.Tensor:
    wh = (boxes[:, 2:] - boxes[:, :2]).repeat(1, 2)
    moved = boxes + (torch.rand(boxes.shape, device=boxes.device) * 2 - 1) * fraction * wh
    x = moved[:, 0::2].clamp(0, size[1])
    y = moved[:, 1::2].clamp(0, size[0])
    out = torch.stack(
        [
            torch.minimum(x[:, 0], x[:, 1]),
            torch.minimum(y[:, 0], y[:, 1]),
            torch.maximum(x[:, 0], x[:, 1]),
            torch.maximum(y[:, 0], y[:, 1]),
        ],
        1,
    )
    return out


def mask_head_loss(
    head: MaskHead,
    fused: list[torch.Tensor],
    images: torch.Tensor | None,
    targets: list[dict[str, torch.Tensor]],
    image_hw: tuple[int, int],
    *,
    jitter: float = 0.1,
) -> torch.Tensor:
    """``loss_mask`` (unweighted): the mask head on the ground-truth boxes (half of them jittered),
    BCE against the targets' masks cropped to those boxes."""
    rois, masks = [], []
    for tgt in targets:
        if "masks" not in tgt:
            raise ValueError(
                "the mask loss needs target masks: build the dataset items with masks "
                "(GroundingDataset(..., with_masks=True))"
            )
        boxes = tgt["boxes"].float().reshape(-1, 4)
        mk = tgt["masks"].bool()
        keep = ((boxes[:, 2] - boxes[:, 0]) >= 1) & ((boxes[:, 3] - boxes[:, 1]) >= 1)
        if "mask_valid" in tgt:
            keep &= tgt["mask_valid"].to(keep.device).bool()
        boxes, mk = boxes[keep], mk[keep.to(mk.device)]
        if jitter > 0 and len(boxes):
            moved = _jitter(boxes, jitter, image_hw)
            ok = ((moved[:, 2] - moved[:, 0]) >= 1) & ((moved[:, 3] - moved[:, 1]) >= 1)
            pick = ok & (torch.rand(len(boxes), device=boxes.device) < 0.5)
            boxes = torch.where(pick[:, None], moved, boxes)
        rois.append(boxes)
        masks.append(mk)
    logits = head(fused, rois, image_hw, images)
    zero = torch.stack([p.sum() for p in head.parameters()]).sum() * 0.0  # every rank's graph reaches the head (DDP)
    if logits.shape[0] == 0:
        return zero
    return mask_loss(logits, mask_targets(masks, rois, head.resolution).to(logits.device)) + zero
