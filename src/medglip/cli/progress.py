"""Progress bars on stderr: cases of a build, steps of a training run (with elapsed and remaining time)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Callable, Optional

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

from .app import console

if TYPE_CHECKING:  # importing medglip.train imports torch
    from ..train.progress import TrainProgress


def _columns(what: str) -> tuple:
    return (TextColumn(f"[bold]{what}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("elapsed"), TimeRemainingColumn(), TextColumn("left"), TextColumn("{task.fields[last]}"))


@contextmanager
def build_progress() -> Iterator[tuple[Callable[[int], None], Callable[[str, Optional[str]], None]]]:
    """``(on_start, on_progress)`` of :func:`medglip.dataset.build`, drawn as a bar of cases."""
    with Progress(*_columns("building"), console=console, transient=False) as progress:
        task = progress.add_task("cases", total=None, last="")

        def on_start(n: int) -> None:
            progress.update(task, total=n)

        def on_progress(key: str, err: Optional[str]) -> None:
            progress.update(task, advance=1, last=f"[red]failed {key}" if err else key)

        yield on_start, on_progress


class TrainBar:
    """A :class:`~medglip.train.progress.TrainProgress` drawn as a rich bar: steps, elapsed, left, loss."""

    def __init__(self, out: Console) -> None:
        self._console = out
        self._bar: Progress | None = None
        self._task = None

    def start(self, *, total: int, done: int) -> None:
        self._bar = Progress(*_columns("training"), console=self._console, transient=False)
        self._bar.start()
        self._task = self._bar.add_task("steps", total=total, completed=done, last="")

    def step(self, step: int, metrics: Mapping[str, float]) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=step, last=f"loss {metrics.get('loss', float('nan')):.4f}")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def train_progress(out: Console | None = None) -> TrainProgress | None:
    """The training bar on a terminal; None elsewhere (a log file gets the loop's periodic lines instead)."""
    out = out or console
    return TrainBar(out) if out.is_terminal else None
