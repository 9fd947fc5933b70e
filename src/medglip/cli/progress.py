"""Progress bars on stderr: cases of a build, steps of a training run or an adaptation (with elapsed and
remaining time)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from .app import console

if TYPE_CHECKING:  # importing medglip.train imports torch
    from ..train.progress import TrainProgress


def _columns(what: str) -> tuple:
    return (
        TextColumn(f"[bold]{what}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("elapsed"),
        TimeRemainingColumn(),
        TextColumn("left"),
        TextColumn("{task.fields[last]}"),
    )


@contextmanager
def build_progress() -> Iterator[tuple[Callable[[int], None], Callable[[str, str | None], None]]]:
    """``(on_start, on_progress)`` of :func:`medglip.dataset.build`, drawn as a bar of cases."""
    with Progress(*_columns("building"), console=console, transient=False) as progress:
        task = progress.add_task("cases", total=None, last="")

        def on_start(n: int) -> None:
            progress.update(task, total=n)

        def on_progress(key: str, err: str | None) -> None:
            progress.update(task, advance=1, last=f"[red]failed {key}" if err else key)

        yield on_start, on_progress


class TrainBar:
    """A :class:`~medglip.train.progress.TrainProgress` drawn as a rich bar: steps, elapsed, left, loss."""

    def __init__(self, out: Console) -> None:
        self._console = out
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    def start(self, *, total: int, done: int) -> None:
        self._bar = Progress(*_columns("training"), console=self._console, transient=False)
        self._bar.start()
        self._task = self._bar.add_task("steps", total=total, completed=done, last="")

    def step(self, step: int, metrics: Mapping[str, float]) -> None:
        if self._bar is not None and self._task is not None:  # started
            self._bar.update(self._task, completed=step, last=f"loss {metrics.get('loss', float('nan')):.4f}")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def train_progress(out: Console | None = None) -> TrainProgress | None:
    """The training bar on a terminal; None elsewhere (a log file gets the loop's periodic lines instead)."""
    out = out or console
    return TrainBar(out) if out.is_terminal else None


@contextmanager
def adapt_progress() -> Iterator[Callable[[Any], None] | None]:
    """The ``progress`` callback of :func:`medglip.train.adapt.adapt` on a terminal (None elsewhere): a bar of
    steps whose total follows the budget's estimate, with the elapsed time and what is left of the budget as
    adapt reckons them (not rich's guess from the bar)."""
    if not console.is_terminal:
        yield None
        return
    from ..train.progress import clock

    with Progress(
        TextColumn("[bold]adapting"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[elapsed]} elapsed, {task.fields[left]} left"),
        TextColumn("{task.fields[last]}"),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task("steps", total=None, elapsed=clock(0), left=clock(None), last="")

        def on_step(p: Any) -> None:  # an AdaptProgress
            bar.update(
                task,
                total=p.total,
                completed=p.step,
                elapsed=clock(p.elapsed_s),
                left=clock(p.remaining_s),
                last=f"loss {p.loss:.4f}",
            )

        yield on_step
