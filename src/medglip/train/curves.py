"""The training log: one CSV row per step (``log.csv``) and a loss-curve PNG (``loss.png``) drawn with Pillow."""

from __future__ import annotations

import csv
import io
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from ..core.files import atomic_write_bytes

log = logging.getLogger(__name__)

#: Columns written before the loss columns.
BASE_COLUMNS = ("step", "epoch", "lr", "loss")


class CsvLog:
    """Append-only CSV of per-step metrics; on resume, rows after the resumed step are dropped.

    Args:
        path: the CSV file.
        resume_step: keep existing rows with ``step <= resume_step`` (None: start a new file).
    """

    def __init__(self, path: Path, *, resume_step: int | None = None) -> None:
        self.path = Path(path)
        self.columns: list[str] | None = None
        self.rows: list[dict[str, float]] = []
        if resume_step is not None and self.path.is_file():
            with open(self.path, newline="") as f:
                reader = csv.DictReader(f)
                self.columns = list(reader.fieldnames or []) or None
                for row in reader:
                    vals = {k: float(v) for k, v in row.items() if v not in ("", None)}
                    if vals.get("step", math.inf) <= resume_step:
                        self.rows.append(vals)
        self._rewrite()

    def _rewrite(self) -> None:
        buf = io.StringIO()
        if self.columns:
            w = csv.DictWriter(buf, fieldnames=self.columns, extrasaction="ignore")
            w.writeheader()
            for row in self.rows:
                w.writerow({k: _fmt(v) for k, v in row.items()})
        atomic_write_bytes(self.path, buf.getvalue().encode())

    def append(self, row: Mapping[str, float]) -> None:
        """Add one step's metrics (new loss names add columns; the file is rewritten then)."""
        row = dict(row)
        names = list(BASE_COLUMNS) + sorted(k for k in row if k not in BASE_COLUMNS)
        self.rows.append(row)
        if self.columns is None or any(k not in self.columns for k in names):
            self.columns = list(dict.fromkeys((self.columns or []) + names))
            self._rewrite()
            return
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore").writerow(
                {k: _fmt(v) for k, v in row.items()}
            )


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else repr(float(v))


_COLOURS = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
)


def _smooth(ys: Sequence[float], k: int) -> list[float]:
    """Centred moving average over ``k`` points (no smoothing when k <= 1)."""
    if k <= 1:
        return list(ys)
    out, acc = [], 0.0
    window: list[float] = []
    for y in ys:
        window.append(y)
        acc += y
        if len(window) > k:
            acc -= window.pop(0)
        out.append(acc / len(window))
    return out


def plot_losses(
    rows: Sequence[Mapping[str, float]], path: Path, *, size: tuple[int, int] = (900, 520), title: str = "training loss"
) -> None:
    """Draw the loss curves (total and each named loss, log-scale y when they span > 2 decades) to a PNG."""
    names = ["loss"] + sorted({k for r in rows for k in r if k.startswith("loss_")})
    series = {n: [(r["step"], r[n]) for r in rows if n in r and math.isfinite(r[n])] for n in names}
    series = {n: s for n, s in series.items() if s}
    w, h = size
    left, right, top, bottom = 70, 150, 40, 50
    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    d.text((left, 12), title, fill="black", font=font)
    d.rectangle([left, top, w - right, h - bottom], outline="black")
    if not series:
        d.text((left + 10, top + 10), "no data yet", fill="black", font=font)
        _save_png(img, path)
        return
    xs = [x for s in series.values() for x, _ in s]
    ys = [y for s in series.values() for _, y in s]
    x0, x1 = min(xs), max(max(xs), min(xs) + 1)
    pos = [y for y in ys if y > 0]
    logy = bool(pos) and len(pos) == len(ys) and max(pos) / min(pos) > 100
    fy = (lambda v: math.log10(v)) if logy else (lambda v: v)
    y0, y1 = fy(min(ys)), fy(max(ys))
    if y1 - y0 < 1e-12:
        y0, y1 = y0 - 0.5, y1 + 0.5
    pw, ph = w - right - left, h - bottom - top

    def px(x: float, y: float) -> tuple[float, float]:
        return left + (x - x0) / (x1 - x0) * pw, top + (1 - (fy(y) - y0) / (y1 - y0)) * ph

    for i in range(6):  # ticks
        fx = x0 + (x1 - x0) * i / 5
        gx = left + pw * i / 5
        d.line([gx, h - bottom, gx, h - bottom + 4], fill="black")
        d.text((gx - 10, h - bottom + 8), f"{fx:.0f}", fill="black", font=font)
        fyv = y0 + (y1 - y0) * i / 5
        gy = top + ph * (1 - i / 5)
        d.line([left - 4, gy, left, gy], fill="black")
        d.line([left, gy, w - right, gy], fill=(230, 230, 230))
        d.text((4, gy - 6), f"{10**fyv if logy else fyv:.3g}", fill="black", font=font)
    d.text((left + pw // 2 - 10, h - 20), "step", fill="black", font=font)
    k = max(1, len(next(iter(series.values()))) // 50)
    for j, (name, s) in enumerate(series.items()):
        colour = _COLOURS[j % len(_COLOURS)]
        sm = _smooth([y for _, y in s], k)
        pts = [px(x, y) for (x, _), y in zip(s, sm, strict=True)]
        if len(pts) == 1:
            d.ellipse([pts[0][0] - 2, pts[0][1] - 2, pts[0][0] + 2, pts[0][1] + 2], fill=colour)
        else:
            d.line(pts, fill=colour, width=2 if name == "loss" else 1)
        ly = top + 8 + 16 * j
        d.line([w - right + 10, ly + 6, w - right + 30, ly + 6], fill=colour, width=2)
        d.text((w - right + 36, ly), name, fill="black", font=font)
    if logy:
        d.text((left, h - 20), "log scale", fill=(100, 100, 100), font=font)
    _save_png(img, path)


def _save_png(img: Image.Image, path: Path) -> None:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    atomic_write_bytes(Path(path), buf.getvalue())
