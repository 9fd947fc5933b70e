"""Options several commands share, and the few steps they share (the model load, the LLM client, the
training config): each written once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from .app import CliError

WINDOW_HELP = (
    "CT window of the picture: {window_names} or LOW:HIGH in HU (default soft_tissue). The model's "
    "input does not depend on it."
)


def window_value(value: str | None) -> str | None:
    """A CT window option as the library reads it: a name, or ``LOW:HIGH`` (``LOW,HIGH`` kept) → ``LOW,HIGH``."""
    if value is None:
        return None
    return value.strip().replace(":", ",")


WINDOW = typer.Option(None, "--window", help=WINDOW_HELP, callback=window_value)
MASKS = typer.Option(
    "none",
    "--masks",
    help="Masks per box: head (the checkpoint's own mask head), medsam (LiteMedSAM "
    "given each box), auto (head when the checkpoint has one, else LiteMedSAM) or none.",
)
CHECKPOINT = typer.Option(
    None, "--checkpoint", help="A run folder (medglip train output); default: the model medglip ships."
)
MODALITY = typer.Option(None, help="{modalities} (default: DICOM tag or classifier).")
# the defaults of TrainConfig (tests/test_glipv2.py checks that they agree)
CONTRAST = typer.Option(0.0, help="Weight of GLIPv2's inter-image region–word contrastive loss (0: off).")
MLM = typer.Option(0.0, help="Weight of masked language modelling on the prompts (0: off; > 0 adds an MLM head).")
MASK_W = typer.Option(1.0, help="Weight of the mask head's loss on the dataset's masks (0: no mask head).")
FREEZE = typer.Option(
    [],
    "--freeze",
    help="Keep a model part as it starts: image_backbones (the pretrained image "
    "encoders, GLIP's few-shot setting) or text_encoder; repeatable.",
)
CONTEXT = typer.Option(
    0,
    min=0,
    help="2.5D input: slices k-N, k, k+N of a volume as the three channels (0: off); "
    "the dataset must be built with the same --context-slices.",
)
PRESET = typer.Option("default", help="Model preset: {presets}.")
LLM_ENDPOINT = typer.Option(
    None,
    "--llm-endpoint",
    envvar="MEDGLIP_LLM_ENDPOINT",
    help="OpenAI-compatible API base URL, e.g. http://localhost:8000/v1 (a local medical VLM server).",
)
LLM_MODEL = typer.Option(None, "--llm-model", envvar="MEDGLIP_LLM_MODEL", help="Model name for the chat API.")
LLM_KEY = typer.Option(None, "--llm-key", envvar="MEDGLIP_LLM_API_KEY", help="API key (sent as a bearer token).")


def phrase_option(help: str, *, required: bool = False) -> Any:
    """``-p/--phrase``, the one name of the phrase option in every command."""
    return typer.Option(... if required else None, "--phrase", "-p", help=help)


def run_dir(checkpoint: Path | None) -> Path:
    """``--checkpoint``, or the shipped model's folder when it is not given."""
    from ..model.shipped import shipped_run

    return checkpoint if checkpoint is not None else shipped_run()


def load_grounder(checkpoint: Path | None, *, device: str, masks: str | bool = "none") -> tuple[Any, Any]:
    """``(grounder, masks)``: the checkpoint's Grounder, and the value of ``masks=`` (the one setting that
    chooses masks) its grounding calls take for ``--masks``."""
    from ..infer import Grounder, mask_option

    return Grounder.from_pretrained(run_dir(checkpoint), device=device), mask_option(masks)


def export_options(outputs: str | None, max_voxels: int | None, checkpoint: Path) -> Any:
    """The :class:`~medglip.export.ExportOptions` of ``--outputs`` / ``--max-voxels`` (the checkpoint is
    recorded as the algorithm's parameter in DICOM outputs)."""
    from ..export import ExportOptions, parse_outputs

    return ExportOptions(
        outputs=parse_outputs(outputs), max_voxels=max_voxels, algorithm_parameters=(("checkpoint", checkpoint.name),)
    )


def llm_client(endpoint: str | None, model: str | None, key: str | None) -> Any:
    """The OpenAI-compatible client from flags (falling back to MEDGLIP_LLM_* variables), or None."""
    from ..vqa import ChatClient

    if endpoint:
        if not model:
            raise CliError("--llm-endpoint needs --llm-model (or MEDGLIP_LLM_MODEL): the model name the server serves")
        return ChatClient(endpoint=endpoint, model=model, api_key=key)
    return ChatClient.from_env()


def config(factory: Callable[..., Any], **fields: Any) -> Any:
    """``factory(**fields)``; the ValueError a config raises on a bad value becomes a :class:`CliError`."""
    try:
        return factory(**fields)
    except ValueError as exc:
        raise CliError(str(exc)) from None


def weights(values: list[str], option: str) -> tuple[tuple[str, float], ...]:
    """``["a=2", "b=0.5"]`` → ``(("a", 2.0), ("b", 0.5))``; a malformed item is an error naming it."""
    out = []
    for item in values:
        name, sep, value = item.partition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = float("nan")
        if not sep or not name.strip() or not weight >= 0 or weight == float("inf"):
            raise CliError(f"{option} {item!r}: expected NAME=WEIGHT with a finite weight >= 0")
        out.append((name.strip(), weight))
    return tuple(out)


def model_overrides(image_size: int | None, context_slices: int) -> tuple[tuple[str, object], ...]:
    """The ModelConfig fields the training commands set."""
    return ((("image_size", image_size),) if image_size else ()) + (
        (("context_slices", context_slices),) if context_slices else ()
    )


def train_config(
    *,
    preset: str,
    image_size: int | None,
    context_slices: int,
    source_weight: list[str],
    modality_weight: list[str],
    freeze: list[str],
    **more: Any,
) -> Any:
    """The :class:`~medglip.train.TrainConfig` of the training commands' options."""
    from ..train import TrainConfig

    return config(
        TrainConfig,
        preset=preset,
        model_overrides=model_overrides(image_size, context_slices),
        source_weights=weights(source_weight, "--source-weight"),
        modality_weights=weights(modality_weight, "--modality-weight"),
        freeze=tuple(freeze),
        **more,
    )
