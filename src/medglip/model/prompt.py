"""Prompts: phrases joined into one text with a character-span → token map, chunked to fit.

``build_prompts(["liver", "left kidney"], tokenizer, 128)`` gives one :class:`Prompt` with text
``"liver. left kidney."``; ``phrase_token_mask[p, t]`` says whether token ``t`` (special tokens and
the ". " separators excluded) overlaps phrase ``p``'s characters. A phrase's score is computed from
its tokens. When the phrases do not fit in ``max_len`` tokens they are split greedily, in order,
into several prompts; a phrase is never split across prompts.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..core.text import clean_phrase

log = logging.getLogger(__name__)

SEPARATOR = ". "


@dataclass(frozen=True, eq=False)
class Prompt:
    """One tokenised prompt.

    Attributes:
        phrases: e.g. ``("liver", "left kidney")``.
        text: ``"liver. left kidney."``.
        char_spans: per phrase ``(start, end)`` into ``text``.
        input_ids: LongTensor (T,), T <= max_len (special tokens included).
        attention_mask: LongTensor (T,).
        phrase_token_mask: BoolTensor (P, T).
    """

    phrases: tuple[str, ...]
    text: str
    char_spans: tuple[tuple[int, int], ...]
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    phrase_token_mask: torch.Tensor

    def __len__(self) -> int:
        return len(self.phrases)

    @property
    def num_tokens(self) -> int:
        return int(self.input_ids.shape[0])


def _clean(phrase: str) -> str:
    p = clean_phrase(phrase)
    if not p:
        raise ValueError(f"empty phrase {phrase!r}")
    return p


def _join(phrases: Sequence[str]) -> tuple[str, list[tuple[int, int]]]:
    spans, pos = [], 0
    for p in phrases:
        spans.append((pos, pos + len(p)))
        pos += len(p) + len(SEPARATOR)
    return SEPARATOR.join(phrases) + ".", spans


def _n_tokens(text: str, tokenizer) -> int:
    return len(tokenizer(text, add_special_tokens=True)["input_ids"])


def chunk_phrases(phrases: Sequence[str], tokenizer, max_len: int) -> list[tuple[int, ...]]:
    """Greedy, order-keeping split of ``phrases`` into groups whose prompt fits ``max_len`` tokens.

    Returns the phrase indices of each group; ``build_prompts(...)[i].phrases`` are
    ``phrases[j] for j in chunk_phrases(...)[i]``. A phrase too long on its own is kept alone (and
    truncated by :func:`make_prompt`).
    """
    cleaned = [_clean(p) for p in phrases]
    groups: list[list[int]] = []
    current: list[int] = []
    for i in range(len(cleaned)):
        trial = current + [i]
        if not current or _n_tokens(_join([cleaned[j] for j in trial])[0], tokenizer) <= max_len:
            current = trial
        else:
            groups.append(current)
            current = [i]
    if current:
        groups.append(current)
    return [tuple(g) for g in groups]


def make_prompt(phrases: Sequence[str], tokenizer, max_len: int) -> Prompt:
    """One prompt from ``phrases`` (truncated to ``max_len`` tokens, with a warning)."""
    cleaned = tuple(_clean(p) for p in phrases)
    if not cleaned:
        raise ValueError("a prompt needs at least one phrase")
    text, spans = _join(cleaned)
    enc = tokenizer(text, add_special_tokens=True, truncation=True, max_length=max_len, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    if _n_tokens(text, tokenizer) > max_len:
        log.warning("prompt %r is longer than %d tokens and was truncated", text[:80], max_len)
    special = set(tokenizer.all_special_ids)
    mask = torch.zeros(len(cleaned), len(ids), dtype=torch.bool)
    for t, ((s, e), tok) in enumerate(zip(offsets, ids, strict=True)):
        if tok in special or e <= s:
            continue
        for p, (ps, pe) in enumerate(spans):
            if s < pe and e > ps:
                mask[p, t] = True
    if not bool(mask.any(1).all()):
        lost = [cleaned[p] for p in range(len(cleaned)) if not mask[p].any()]
        raise ValueError(f"phrases {lost} have no tokens within max_len={max_len}")
    return Prompt(
        phrases=cleaned,
        text=text,
        char_spans=tuple(spans),
        input_ids=torch.tensor(ids, dtype=torch.long),
        attention_mask=torch.tensor(enc["attention_mask"], dtype=torch.long),
        phrase_token_mask=mask,
    )


def build_prompts(phrases: Sequence[str], tokenizer, max_len: int) -> list[Prompt]:
    """Prompts for ``phrases``: one when they fit in ``max_len`` tokens, else several chunks, each
    phrase whole in exactly one chunk, order kept."""
    if not phrases:
        raise ValueError("no phrases")
    return [
        make_prompt([phrases[i] for i in g], tokenizer, max_len) for g in chunk_phrases(phrases, tokenizer, max_len)
    ]


def build_batch_prompts(
    phrases_per_image: Sequence[Sequence[str]], tokenizer, max_len: int
) -> list[list[tuple[Prompt, tuple[int, ...]]]]:
    """Split a batch's phrases into prompts.

    Returns, per image, its prompts with the indices (into that image's phrase list) of each
    prompt's phrases, so targets (``phrase_ids``) and detections can be remapped between the
    image's phrase list and a chunk. Identical phrase lists share the same Prompt objects (the text
    encoder then runs once for them).
    """
    cache: dict[tuple[str, ...], list[tuple[Prompt, tuple[int, ...]]]] = {}
    out = []
    for phrases in phrases_per_image:
        key = tuple(phrases)
        if key not in cache:
            groups = chunk_phrases(phrases, tokenizer, max_len)
            cache[key] = [(make_prompt([phrases[i] for i in g], tokenizer, max_len), g) for g in groups]
        out.append(cache[key])
    return out


def remap_phrase_ids(phrase_ids: torch.Tensor, chunk: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """For targets whose ``phrase_ids`` index the full phrase list: ``(keep, new_ids)`` where
    ``keep`` (N,) bool selects the targets whose phrase is in ``chunk`` and ``new_ids`` index the
    chunk's prompt."""
    lookup = torch.full(
        (int(max(max(chunk), int(phrase_ids.max()) if phrase_ids.numel() else 0)) + 1,), -1, dtype=torch.long
    )
    lookup[torch.tensor(chunk, dtype=torch.long)] = torch.arange(len(chunk))
    new = lookup[phrase_ids.long()] if phrase_ids.numel() else phrase_ids.long()
    keep = new >= 0
    return keep, new[keep]


def token_batch(prompts: Sequence[Prompt]) -> tuple[list[Prompt], torch.Tensor, torch.Tensor]:
    """The distinct prompt objects of ``prompts`` (first-seen order) and their token ids and attention
    masks, LongTensors ``(P, T)`` zero-padded to the longest (``T`` its token count)."""
    distinct = list({id(p): p for p in prompts}.values())
    t = max(p.num_tokens for p in distinct)
    ids = torch.zeros(len(distinct), t, dtype=torch.long)
    att = torch.zeros(len(distinct), t, dtype=torch.long)
    for i, p in enumerate(distinct):
        ids[i, : p.num_tokens] = p.input_ids
        att[i, : p.num_tokens] = p.attention_mask
    return distinct, ids, att
