"""Masked language modelling on the prompts (GLIPv2's language-side pre-training task).

A separate masked copy of each prompt goes through the shared text encoder (grounding keeps seeing
the unmasked text); 15 % of the real prompt tokens (special tokens never) are chosen, at least one
per prompt, and replaced BERT's way — 80 % by ``[MASK]``, 10 % by a random token, 10 % kept — and
predicted by :class:`MLMHead` over the text encoder's own vocabulary.

:class:`MLMHead` is transformers' ``BertLMPredictionHead``: ``dense → activation → LayerNorm →
decoder`` whose decoder weight IS the text encoder's input word-embedding matrix (tied: no copy,
no extra parameters) plus an output bias. :func:`pretrained_mlm_state` finds the pretrained head of
an encoder checkpoint (``cls.predictions.*`` of a ``BertForMaskedLM``) when it has one; the default
text encoder, all-MiniLM-L6-v2 (a sentence-transformers model), ships without one, so its head
starts from BERT's initialisation (normal(0.02), LayerNorm 1/0, bias 0) with the decoder tied.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)

#: The ``BertForMaskedLM`` state-dict prefix of the prediction head, and our names for its parts.
_PREFIX = "cls.predictions."
_KEYS = {
    "transform.dense.weight": "dense.weight",
    "transform.dense.bias": "dense.bias",
    "transform.LayerNorm.weight": "norm.weight",
    "transform.LayerNorm.bias": "norm.bias",
    "bias": "bias",
}


def _activation(name: str | None):
    name = (name or "gelu").lower()
    if name in ("gelu", "gelu_new", "gelu_python"):
        return nn.GELU(approximate="tanh" if name == "gelu_new" else "none")
    if name == "relu":
        return nn.ReLU()
    if name in ("silu", "swish"):
        return nn.SiLU()
    raise ValueError(f"unsupported text encoder activation {name!r} for the MLM head")


class MLMHead(nn.Module):
    """The language-model head: ``logits = LayerNorm(act(dense(h))) @ E^T + bias``.

    Args (keyword-only):
        hidden_size: H of the text encoder.
        vocab_size: V, the number of rows of the text encoder's word-embedding matrix E (V, H).
        activation: the encoder's ``hidden_act`` (``gelu`` for BERT / MiniLM).
        eps: the encoder's ``layer_norm_eps``.

    Forward ``head(hidden, embedding)``:
        hidden: FloatTensor (N, H) (or (B, T, H)) hidden states of the masked positions.
        embedding: FloatTensor (V, H), the encoder's input word embeddings (the tied decoder).
        returns FloatTensor (N, V) (or (B, T, V)) logits over the vocabulary.
    """

    def __init__(
        self, *, hidden_size: int, vocab_size: int, activation: str | None = "gelu", eps: float = 1e-12
    ) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.act = _activation(activation)
        self.norm = nn.LayerNorm(hidden_size, eps=eps)
        self.bias = nn.Parameter(torch.zeros(vocab_size))
        nn.init.normal_(self.dense.weight, std=0.02)
        nn.init.zeros_(self.dense.bias)

    def forward(self, hidden: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        if embedding.shape[0] != self.bias.shape[0]:
            raise ValueError(f"vocabulary of {embedding.shape[0]} embeddings, head built for {self.bias.shape[0]}")
        h = self.norm(self.act(self.dense(hidden)))
        return F.linear(h, embedding.to(h.dtype), self.bias.to(h.dtype))

    def load_pretrained(self, state: dict[str, torch.Tensor]) -> None:
        """Copy ``cls.predictions.*`` tensors of a ``BertForMaskedLM`` checkpoint into the head."""
        own = {
            _KEYS[k.removeprefix(_PREFIX)]: v
            for k, v in state.items()
            if k.startswith(_PREFIX) and k.removeprefix(_PREFIX) in _KEYS
        }
        missing = set(_KEYS.values()) - set(own)
        if missing:
            raise ValueError(f"pretrained MLM head lacks {sorted(missing)}")
        self.load_state_dict(own, strict=True)


def pretrained_mlm_state(folder: str | Path) -> dict[str, torch.Tensor] | None:
    """The ``cls.predictions.*`` tensors of the checkpoint in ``folder`` (``model.safetensors`` or
    ``pytorch_model.bin``, read without unpickling code), or None when it has no MLM head."""
    folder = Path(folder)
    st = folder / "model.safetensors"
    if st.is_file():
        from safetensors import safe_open

        with safe_open(str(st), "pt") as f:
            keys = [k for k in f.keys() if k.startswith(_PREFIX)]
            return {k: f.get_tensor(k) for k in keys} or None
    pt = folder / "pytorch_model.bin"
    if pt.is_file():
        state = torch.load(pt, map_location="cpu", weights_only=True)
        return {k: v for k, v in state.items() if k.startswith(_PREFIX)} or None
    return None


def mask_tokens(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    special_ids: set[int] | list[int],
    mask_id: int,
    vocab_size: int,
    probability: float = 0.15,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking of real tokens.

    Args:
        input_ids: LongTensor (B, T); attention_mask: (B, T), 1 for real tokens.
        special_ids: token ids never chosen ([CLS], [SEP], [PAD], ...).
        mask_id: the ``[MASK]`` id; vocab_size: random replacements are drawn from ``[0, vocab_size)``.
        probability: the share of real tokens chosen (at least one per row that has one).

    Returns:
        ``(masked_ids (B, T), labels (B, T))``: labels hold the original id at chosen positions and
        -100 elsewhere (ignored by cross-entropy).
    """
    device = input_ids.device
    ids = input_ids.clone()
    real = attention_mask.bool() & ~torch.isin(ids, torch.tensor(sorted(special_ids), device=device, dtype=ids.dtype))
    u = torch.rand(ids.shape, generator=generator, device="cpu").to(device)
    chosen = real & (u < probability)
    for r in torch.nonzero(real.any(1) & ~chosen.any(1)).flatten().tolist():  # at least one per prompt
        cand = torch.nonzero(real[r]).flatten()
        chosen[r, cand[int(torch.randint(len(cand), (1,), generator=generator))]] = True
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    v = torch.rand(ids.shape, generator=generator, device="cpu").to(device)
    random_ids = torch.randint(vocab_size, ids.shape, generator=generator, device="cpu").to(device)
    ids = torch.where(chosen & (v < 0.8), torch.full_like(ids, mask_id), ids)
    ids = torch.where(chosen & (v >= 0.8) & (v < 0.9), random_ids, ids)
    return ids, labels


def mlm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of ``logits`` (N, V) at ``labels`` (N,) (-100 ignored); 0 without labels."""
    if not bool((labels != -100).any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits.float(), labels, ignore_index=-100)
