"""The Med-GLIP grounding model (see docs/model_api.md for the binding contracts)."""

from .checkpoint import load_checkpoint, save_checkpoint
from .config import PRESETS, ModelConfig, get_preset
from .grounding import GroundingModel, TextFeatures
from .prompt import Prompt, build_batch_prompts, build_prompts, chunk_phrases, remap_phrase_ids

__all__ = [
    "GroundingModel",
    "ModelConfig",
    "PRESETS",
    "Prompt",
    "TextFeatures",
    "build_batch_prompts",
    "build_prompts",
    "chunk_phrases",
    "get_preset",
    "load_checkpoint",
    "remap_phrase_ids",
    "save_checkpoint",
]
