"""Prompt tuning of chosen phrases: a learned offset added to the text features of each of their tokens.

GLIP's prompt tuning keeps the language encoder, fusion and head fixed and learns the prompt's text
features; here the learned part is one vector per tuned phrase (``ModelConfig.tuned_phrases``), added
to the text encoder's last hidden state at every token of that phrase, wherever the phrase stands in a
prompt (before the projection and fusion, so deep fusion still sees it). A prompt without a tuned
phrase gets its features unchanged, bit for bit: the phrases the model already knew keep their answers.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..core.text import phrase_key
from .prompt import Prompt


class PhraseOffsets(nn.Module):
    """Learned text-feature offsets of some phrases.

    Args:
        phrases: the tuned phrases (compared as :func:`~medglip.core.text.phrase_key`).
        hidden: the text encoder's hidden size H.

    Forward ``(hidden, prompts)``: hidden FloatTensor (N, T, H) of N distinct prompts (padded to T);
    returns the same shape with each tuned phrase's offset added at its tokens.
    """

    def __init__(self, *, phrases: Sequence[str], hidden: int) -> None:
        super().__init__()
        keys = [phrase_key(p) for p in phrases]
        if len(set(keys)) != len(keys) or not all(keys):
            raise ValueError(f"tuned phrases must be distinct and non-empty, got {list(phrases)}")
        self.index = {k: i for i, k in enumerate(keys)}
        self.offsets = nn.Parameter(torch.zeros(len(keys), int(hidden)))  # zero: the untuned features at first

    def forward(self, hidden: torch.Tensor, prompts: Sequence[Prompt]) -> torch.Tensor:
        n, t, _ = hidden.shape
        where = torch.zeros(n, t, len(self.index), dtype=hidden.dtype)
        for j, prompt in enumerate(prompts):
            for i, phrase in enumerate(prompt.phrases):
                row = self.index.get(phrase_key(phrase))
                if row is not None:
                    mask = prompt.phrase_token_mask[i].to(hidden.dtype)
                    where[j, : mask.shape[0], row] += mask
        if not bool(where.any()):
            return hidden  # no tuned phrase asked: exactly the untuned features
        where = where.to(hidden.device)
        return hidden + torch.einsum("ntp,ph->nth", where, self.offsets.to(hidden.dtype))
