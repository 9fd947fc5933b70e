"""The ``medglip`` application: its one error handler, its one logging set-up, and help text filled in
from the registries it describes (layouts, CT windows, presets, modalities, adaptation methods) when it is
shown."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup

from .. import __version__
from ..errors import MedglipError

#: stderr: progress, notes and errors; stdout is left to what a command prints (tables, JSON, answers)
console = Console(stderr=True)


class CliError(MedglipError):
    """A command-line value is wrong (the message names the option)."""


def _registry_values() -> dict[str, Callable[[], str]]:
    """``{name}`` placeholders of help texts → how to list the registry (imported only when help is shown:
    the presets need torch)."""

    def layouts() -> str:
        from ..sources import LAYOUTS

        return ", ".join(["auto", *LAYOUTS])

    def windows() -> str:
        from ..core.intensity import CT_WINDOWS

        return ", ".join(f"{name} ({lo:g}:{hi:g})" for name, (lo, hi) in CT_WINDOWS.items())

    def window_names() -> str:
        from ..core.intensity import CT_WINDOWS

        return ", ".join(CT_WINDOWS)

    def presets() -> str:
        from ..model.config import PRESETS

        return ", ".join(f"{name} ({cfg.image_size} px)" for name, cfg in PRESETS.items())

    def modalities() -> str:
        from ..modality import MODALITIES

        return ", ".join(MODALITIES)

    def adapt_shared() -> str:
        from ..train.adapt import SHARED_LR_SCALE

        return f"{SHARED_LR_SCALE:g}"

    def adapt_keep_share() -> str:
        from ..train.adapt import KEEP_SHARE

        return f"{KEEP_SHARE:g}"

    def adapt_replay_every() -> str:
        from ..train.adapt import REPLAY_EVERY

        return str(REPLAY_EVERY)

    def adapt_methods() -> str:
        from ..train.adapt import DEFAULT_METHOD, METHODS, NEW_MODALITY_METHOD

        auto = f"auto ({DEFAULT_METHOD}; {NEW_MODALITY_METHOD} for a modality the start model never trained on)"
        return ", ".join([auto, *METHODS])

    def adapt_norm_stats() -> str:
        from ..train.adapt import DEFAULT_NORM_STATS

        return DEFAULT_NORM_STATS

    def adapt_budget() -> str:
        from ..train.adapt import DEFAULT_BUDGET_MINUTES

        return f"{DEFAULT_BUDGET_MINUTES:g}"

    return {
        "layouts": layouts,
        "windows": windows,
        "window_names": window_names,
        "presets": presets,
        "modalities": modalities,
        "adapt_methods": adapt_methods,
        "adapt_shared": adapt_shared,
        "adapt_keep_share": adapt_keep_share,
        "adapt_replay_every": adapt_replay_every,
        "adapt_budget": adapt_budget,
        "adapt_norm_stats": adapt_norm_stats,
    }


REGISTRIES = _registry_values()


def fill_help(text: str | None) -> str | None:
    """``text`` with each ``{name}`` of :data:`REGISTRIES` replaced by the registry's current entries."""
    if not text:
        return text
    for name, listing in REGISTRIES.items():
        token = "{" + name + "}"
        if token in text:
            text = text.replace(token, listing())
    return text


class Command(TyperCommand):
    """A sub-command whose help names what the registries hold now, not what they held when it was written."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        items: tuple[Any, ...] = (self, *self.params)  # each has help (the parameters' base type does not say so)
        for item in items:
            template = item.__dict__.setdefault("_help_template", item.help)  # the text as written
            item.help = fill_help(template)
        super().format_help(ctx, formatter)


class Group(TyperGroup):
    """The command group with the one error handler: a :class:`MedglipError` from any command is one red
    ``error:`` line and exit status 2 (no traceback: the message names the thing at fault)."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except MedglipError as exc:
            fail(str(exc))


app = typer.Typer(
    cls=Group,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Medical image grounding (Med-GLIP): build datasets, show them, train, ground, report, serve.",
)


def command(name: str | None = None, **kw: Any) -> Callable:
    """``@command()``: register a sub-command of :data:`app` with the registry-filled help."""
    return app.command(name, cls=Command, **kw)


def fail(msg: str, code: int = 2) -> None:
    """Print ``error: msg`` on stderr and exit with ``code``."""
    console.print(f"[bold red]error:[/] {escape(msg)}", soft_wrap=True, highlight=False)
    raise typer.Exit(code)


def setup_logging(verbose: bool) -> None:
    """The one logging set-up: rich on stderr, INFO (DEBUG with ``--verbose``)."""
    try:  # the CLI shows its own progress; transformers' per-load bars are noise here
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:
        pass
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False, show_time=False)],
        force=True,
    )


@app.callback(invoke_without_command=True)
def _main(
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging (before the command)."),
) -> None:
    if version:
        typer.echo(__version__)
        raise typer.Exit()
    setup_logging(verbose)


def verbose_logging(verbose: bool) -> None:
    """A command's own ``--verbose`` (kept from before the global one)."""
    if verbose:
        logging.getLogger().setLevel(logging.DEBUG)


def main() -> None:
    """The ``medglip`` entry point (pyproject) and ``python -m medglip``."""
    try:
        app()
    except KeyboardInterrupt:
        console.print("interrupted; re-run the same command to resume")
        sys.exit(130)
