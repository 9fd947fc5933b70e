"""``write_report``: the report's markdown, JSON and overlay PNG (and its exports), written in one step."""

from __future__ import annotations

import io
import json
from pathlib import Path

from ..errors import MedglipError
from ..export import ExportBundle
from .model import DEFAULT_OVERLAY, Report


def write_report(report: Report, out_dir: str | Path, *, stem: str = "report") -> dict[str, Path]:
    """Write ``<stem>.md``, ``<stem>.json`` and ``<stem>_overlay.png`` (when there is an overlay), and
    the report's exports beside them (``labels.nii.gz``, ``labels.json``, ``seg.dcm``, ... when
    :func:`make_report` made them), all in one step: a failure leaves the folder as it was.

    The markdown's overlay link is ``<stem>_overlay.png``; an LLM rewrite (``prose``) is appended to
    the markdown under its own heading. Returns ``{"md": ..., "json": ..., "overlay": ...}`` plus one
    entry per exported file (its name).
    """
    if not stem or stem in (".", "..") or any(c in stem for c in "/\\\0"):
        raise MedglipError(f"bad report stem {stem!r}: use a plain file name without folders")
    out = Path(out_dir)
    names = {"md": f"{stem}.md", "json": f"{stem}.json"}
    overlay_name = f"{stem}_overlay.png"
    markdown = report.markdown.replace(f"]({DEFAULT_OVERLAY})", f"]({overlay_name})")
    if report.prose:
        markdown += (
            "\n## Rewritten by a language model\n\n*Unverified rewrite of the report above.*\n\n"
            f"{report.prose.strip()}\n"
        )
    files: dict[str, bytes] = {}
    if report.overlay is not None:
        buf = io.BytesIO()
        report.overlay.save(buf, format="PNG")
        names["overlay"] = overlay_name
        files[overlay_name] = buf.getvalue()
    bundle = report.exports or ExportBundle()
    clash = sorted(set(bundle.files) & {*names.values()})
    if clash:
        raise MedglipError(f"report stem {stem!r} gives file names the exports use: {clash}")
    files[names["md"]] = markdown.encode("utf-8")
    data = report.to_json()
    data["markdown"] = markdown
    data["files"] = {**names, **{n: n for n in sorted(bundle.files)}}
    files[names["json"]] = (json.dumps(data, indent=1, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")
    written = bundle.write(out, extra=files)
    return {**{k: written[v] for k, v in names.items()}, **{n: written[n] for n in bundle.files}}
