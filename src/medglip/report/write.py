"""``write_report``: the report's markdown, JSON and overlay PNG, each written atomically."""

from __future__ import annotations

import io
from pathlib import Path

from ..core.files import atomic_write_bytes, atomic_write_json, atomic_write_text
from ..errors import MedglipError
from .model import DEFAULT_OVERLAY, Report


def write_report(report: Report, out_dir: str | Path, *, stem: str = "report") -> dict[str, Path]:
    """Write ``<stem>.md``, ``<stem>.json`` and ``<stem>_overlay.png`` (when there is an overlay).

    The markdown's overlay link is ``<stem>_overlay.png``; an LLM rewrite (``prose``) is appended to
    the markdown under its own heading. Returns ``{"md": ..., "json": ..., "overlay": ...}``.
    """
    if not stem or stem in (".", "..") or any(c in stem for c in "/\\\0"):
        raise MedglipError(f"bad report stem {stem!r}: use a plain file name without folders")
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise MedglipError(f"cannot create the report folder {out}: {e}") from None
    paths = {"md": out / f"{stem}.md", "json": out / f"{stem}.json"}
    overlay_name = f"{stem}_overlay.png"
    markdown = report.markdown.replace(f"]({DEFAULT_OVERLAY})", f"]({overlay_name})")
    if report.prose:
        markdown += ("\n## Rewritten by a language model\n\n*Unverified rewrite of the report above.*\n\n"
                     f"{report.prose.strip()}\n")
    if report.overlay is not None:
        buf = io.BytesIO()
        report.overlay.save(buf, format="PNG")
        paths["overlay"] = out / overlay_name
        atomic_write_bytes(paths["overlay"], buf.getvalue())
    atomic_write_text(paths["md"], markdown)
    data = report.to_json()
    data["markdown"] = markdown
    data["files"] = {k: p.name for k, p in paths.items()}
    atomic_write_json(paths["json"], data, indent=1)
    return paths
