"""The markdown of a report: header, findings, phrases not identified, table, overlay, disclaimer."""

from __future__ import annotations

from ..context import Finding, GroundedContext
from ..context.render import format_number
from .sentences import DASH, TIMES

DISCLAIMER = (
    "This report was generated automatically from phrase grounding (boxes found by a detection "
    "model). It is not a diagnosis and has not been reviewed by a clinician."
)

_ORIENTATION = {
    "world": "patient sides from the image geometry (LPS)",
    "radiological": "patient sides assume the radiological convention (patient's left on the image's right)",
    "none": "no patient sides for this modality; image left / right only",
}


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def table_head(ctx: GroundedContext) -> list[str]:
    """The column names of the boxes table (the markdown's and the HTML's)."""
    size_head = "Size (mm, LPS x × y × z)" if ctx.volume is not None else "Size (mm, w × h)"
    return ["Id", "Phrase", "Score", "Box (px, x0, y0, x1, y1)", size_head, "Size from", "Slices", "Location"]


def table_cells(f: Finding) -> list[str]:
    """One finding's row of the boxes table, as plain text."""
    box = ", ".join(f"{v:.0f}" for v in f.box)
    size = TIMES.join(format_number(v) for v in f.size_mm) if f.size_mm is not None else DASH
    slices = (
        DASH
        if f.slices is None
        else (f"{f.slices[0]}" if f.slices[0] == f.slices[1] else f"{f.slices[0]}{DASH}{f.slices[1]}")
    )
    return [f.id, f.phrase, f"{f.score:.2f}", box, size, f.size_source, slices, f.location]


def header_items(ctx: GroundedContext) -> list[tuple[str, str]]:
    """The report's header as ``(label, plain text)`` pairs: source, modality, image, orientation, what was
    looked for, and one caution per phrase or modality the model was not trained on."""
    items = [
        ("Source", str(ctx.source)),
        ("Modality", ctx.modality),
        ("Image", _image_line(ctx)),
        ("Orientation", _ORIENTATION.get(ctx.orientation, ctx.orientation)),
        ("Looked for", f"{', '.join(ctx.asked)} (score at least {ctx.score_threshold:.2f})"),
    ]
    return items + [("Caution", note) for note in ctx.untrained]


def _row(f: Finding) -> str:
    return "| " + " | ".join(_cell(c) for c in table_cells(f)) + " |"


def _image_line(ctx: GroundedContext) -> str:
    h, w = ctx.image_size
    spacing = (
        "pixel spacing unknown"
        if ctx.pixel_spacing is None
        else f"pixel spacing {ctx.pixel_spacing[0]:.3g}{TIMES}{ctx.pixel_spacing[1]:.3g} mm"
    )
    if ctx.volume is not None:
        shape = TIMES.join(str(s) for s in ctx.volume.get("shape", ()))
        return (
            f"volume of {shape} voxels, {ctx.volume.get('n_slices')} {ctx.plane} slices of {w}{TIMES}{h} px, "
            f"{spacing}; the overlay shows slice {ctx.volume.get('key_slice')}"
        )
    return f"{w}{TIMES}{h} px, {ctx.plane}, {spacing}"


def render_markdown(
    ctx: GroundedContext,
    found: list[str],
    missing: list[str],
    *,
    overlay_name: str | None = "report_overlay.png",
    title: str = "Grounding report",
) -> str:
    """The report as markdown; ``overlay_name`` None leaves the overlay out."""
    lines = [f"# {title}", ""]
    lines += [f"- **{label}:** " + (f"`{text}`" if label == "Source" else text) for label, text in header_items(ctx)]
    lines += ["", "## Findings", ""]
    lines += [f"- {s}" for s in found] or ["- None above the score threshold."]
    if missing:  # no section when every phrase was found (nothing to list)
        lines += ["", "## Not identified", ""] + [f"- {s}" for s in missing]
    head = table_head(ctx)
    lines += ["", "## Findings table", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += [_row(f) for f in ctx.findings]  # header only when nothing was found
    if overlay_name:
        lines += ["", "## Overlay", "", f"![overlay]({overlay_name})"]
    lines += ["", "---", "", f"*{DISCLAIMER}*", ""]
    return "\n".join(lines)
