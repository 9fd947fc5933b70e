"""GLIPv2's inter-image region–word contrastive loss.

The grounding loss scores a region only against the phrases of its own image's prompt. This loss
scores the region features of every positive anchor (the aligned region embedding the head dots
with tokens, :meth:`GroundingHead.align`) against the phrase embeddings of EVERY image in the batch
— under DDP gathered from all ranks with ``torch.distributed.nn.functional.all_gather``, which keeps
the gradients — so a region also learns what it is not from the other images' phrases (their
negatives included).

- A phrase embedding is the mean of the phrase's projected tokens (the token side of the head).
- Targets (:func:`contrastive_targets`): a region is positive for its own phrase, wherever that
  phrase occurs in the batch; pairs the ontology relates (synonyms, ancestors / descendants, same
  structure with a compatible side: :class:`medglip.ontology.PhraseRelations`) are masked out —
  neither positive nor negative ("liver tumor" vs "liver"); everything else is a negative, the
  other side included ("left kidney" vs "right kidney").
- Loss: cosine similarities over a temperature τ, a softmax over each region's valid phrases and
  the mean negative log-likelihood of its positives (SupCon's multi-positive form); regions without
  a negative are skipped; the mean is over regions.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ..ontology import PhraseRelations


def phrase_embeddings(tokens: torch.Tensor, phrase_token_masks: list[torch.Tensor]) -> torch.Tensor:
    """Mean of each phrase's token embeddings.

    Args:
        tokens: FloatTensor (B, T, d) projected tokens; phrase_token_masks: per image (P_b, T_b) bool.

    Returns:
        FloatTensor (P, d), P = Σ P_b, images in order.
    """
    out = []
    for i, ptm in enumerate(phrase_token_masks):
        w = ptm.to(tokens.device, tokens.dtype)
        w = w / w.sum(1, keepdim=True).clamp(min=1.0)
        out.append(w @ tokens[i, : ptm.shape[1]])
    return torch.cat(out) if out else tokens.new_zeros(0, tokens.shape[-1])


def gather_phrases(embeddings: torch.Tensor, phrases: list[str]) -> tuple[torch.Tensor, list[str]]:
    """The phrase embeddings (P, d) and phrases of every rank (this rank's as they are without DDP).

    Differentiable: ``torch.distributed.nn.functional.all_gather`` sends each rank's gradients of
    the gathered embeddings back to their owners. Ranks may hold different numbers of phrases (the
    embeddings are padded for the collective and cut back).
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return embeddings, list(phrases)
    from torch.distributed.nn.functional import all_gather

    world = dist.get_world_size()
    lists: list[list[str] | None] = [None] * world
    dist.all_gather_object(lists, list(phrases))
    most = max(len(p or []) for p in lists)
    padded = F.pad(embeddings, (0, 0, 0, most - embeddings.shape[0]))
    parts = all_gather(padded.contiguous())
    emb = torch.cat([part[: len(p or [])] for part, p in zip(parts, lists, strict=True)])
    return emb, [s for p in lists for s in (p or [])]


def contrastive_targets(
    region_phrases: list[str], phrases: list[str], relations: PhraseRelations
) -> tuple[torch.Tensor, torch.Tensor]:
    """Positives and valid (positive or negative) pairs of regions × batch phrases.

    Args:
        region_phrases: the phrase of each region (N); phrases: the batch's phrases (P).
        relations: the ontology's relations (:class:`medglip.ontology.PhraseRelations`).

    Returns:
        ``(positive, valid)``: BoolTensors (N, P); a related pair is not valid (masked out).
    """
    rows, cols = list(dict.fromkeys(region_phrases)), list(dict.fromkeys(phrases))
    table = relations.table(rows, cols)  # distinct phrases only, then expanded
    same = torch.tensor([[r == "same" for r in row] for row in table], dtype=torch.bool).reshape(len(rows), len(cols))
    related = torch.tensor([[r == "related" for r in row] for row in table], dtype=torch.bool).reshape(same.shape)
    ri = torch.tensor([rows.index(p) for p in region_phrases], dtype=torch.long)
    ci = torch.tensor([cols.index(p) for p in phrases], dtype=torch.long)
    return same[ri][:, ci], ~related[ri][:, ci]


class RegionWordContrast(nn.Module):
    """The inter-image region–word contrastive loss (no parameters).

    Args (keyword-only):
        relations: :class:`medglip.ontology.PhraseRelations` built from the ontology in use.
        temperature: τ of the cosine similarities.

    Forward ``loss(regions, region_phrases, phrase_emb, phrases)``:
        regions: FloatTensor (N, d) region features of the positive anchors (this rank's).
        region_phrases: N strings, each region's phrase.
        phrase_emb: FloatTensor (P, d) phrase embeddings of this rank's batch (gathered inside).
        phrases: P strings.
        returns a scalar: the mean over regions that have a positive and a negative (0 when none,
        still connected to the graph).
    """

    def __init__(self, *, relations: PhraseRelations, temperature: float = 0.07) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError("temperature must be > 0")
        self.relations = relations
        self.temperature = float(temperature)

    def forward(
        self, regions: torch.Tensor, region_phrases: list[str], phrase_emb: torch.Tensor, phrases: list[str]
    ) -> torch.Tensor:
        if regions.shape[0] != len(region_phrases) or phrase_emb.shape[0] != len(phrases):
            raise ValueError("one phrase per region and per phrase embedding")
        all_emb, all_phrases = gather_phrases(phrase_emb, phrases)
        # every rank's graph holds the gathered embeddings: the gather's backward is a collective that
        # all ranks must join (a rank without regions would otherwise leave the others waiting)
        zero = regions.sum() * 0.0 + all_emb.sum() * 0.0
        if regions.shape[0] == 0 or all_emb.shape[0] == 0:
            return zero
        positive, valid = contrastive_targets(region_phrases, all_phrases, self.relations)
        positive, valid = positive.to(regions.device), valid.to(regions.device)
        keep = (positive & valid).any(1) & (valid & ~positive).any(1)
        if not bool(keep.any()):
            return zero
        r = F.normalize(regions[keep].float(), dim=-1)
        e = F.normalize(all_emb.float(), dim=-1)
        logits = (r @ e.T / self.temperature).masked_fill(~valid[keep], float("-inf"))
        logp = logits.log_softmax(-1)
        pos = positive[keep] & valid[keep]
        per_region = -(logp.masked_fill(~pos, 0.0).sum(1) / pos.sum(1))
        return per_region.mean()
