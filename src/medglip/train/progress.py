"""What the training loop reports while it runs, and the clock arithmetic of that report.

The loop never draws: it calls a :class:`TrainProgress` hook (the CLI's is a rich progress bar with
elapsed and remaining time) and logs one line every ``log_every`` steps with the same times.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable


@runtime_checkable
class TrainProgress(Protocol):
    """Told by :func:`medglip.train.train` (rank 0 only) how far training is."""

    def start(self, *, total: int, done: int) -> None:
        """Training runs to step ``total``; ``done`` steps are behind it already (a resumed run)."""

    def step(self, step: int, metrics: Mapping[str, float]) -> None:
        """Step ``step`` finished with these metrics (loss, loss_*, lr, grad_norm, epoch)."""

    def close(self) -> None:
        """Training stopped (finished, failed or interrupted)."""


def seconds_left(step: int, total: int, start_step: int, elapsed: float) -> float | None:
    """The seconds to step ``total`` at the rate of the steps since ``start_step`` (None before the first)."""
    done = step - start_step
    if done <= 0 or elapsed <= 0:
        return None
    return max(0, total - step) * elapsed / done


def clock(seconds: float | None) -> str:
    """``H:MM:SS`` (``-:--:--`` when unknown), as rich's time columns write it."""
    if seconds is None:
        return "-:--:--"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
