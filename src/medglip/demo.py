"""The main job on the real sample cases medglip ships (no download): build, then draw the dataset."""

from __future__ import annotations

import logging
from pathlib import Path

from rich.console import Console

from .build import BuildConfig, build

log = logging.getLogger(__name__)

SAMPLES = Path(__file__).parent / "samples" / "pyradiomics"


def run_demo(out: Path, *, workers: int = 1, console: Console | None = None) -> dict[str, Path]:
    """Build the grounding dataset of the shipped samples into ``out/dataset`` and draw it in ``out/show``.

    Returns the paths of the dataset, the card and the overview image.
    """
    from .show import show

    console = console or Console(stderr=True)
    out = Path(out)
    # two cases only: all go to train; the held-out pyradiomics cases are fetched separately
    config = BuildConfig(source=str(SAMPLES), layout="manifest", split_ratios=(1.0, 0.0, 0.0))
    result = build(config, out / "dataset", workers=workers)
    if result.failed:
        raise RuntimeError(f"sample cases failed to build: {result.failed}")
    paths = show(out / "dataset", out / "show", split="train", n=12)
    card = (out / "dataset" / "card.md").read_text()
    console.print(card)
    console.print(f"[green]dataset[/]: {out / 'dataset'}   [green]pictures[/]: {out / 'show'} "
                  f"({len(paths)} files, overview: {out / 'show' / 'overview.png'})")
    return {"dataset": out / "dataset", "card": out / "dataset" / "card.md", "overview": out / "show" / "overview.png"}
