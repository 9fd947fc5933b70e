"""The report as an HTML fragment, built from its structured data (never from its markdown).

Every piece of text (phrases, the source's name, sentences, a language model's prose) is escaped with
:func:`html.escape`, so nothing a user or a model wrote becomes markup: a phrase ``<script>`` reads as the
characters ``<script>``. The sections and their wording are the markdown's (:mod:`.markdown`); the
overlay is left to the page, which shows the PNG beside it.
"""

from __future__ import annotations

from html import escape

from ..context import GroundedContext
from .markdown import DISCLAIMER, header_items, table_cells, table_head


def _list(items: list[str], empty: str) -> list[str]:
    return ["<ul>", *(f"<li>{escape(t)}</li>" for t in items or [empty]), "</ul>"]


def render_html(
    ctx: GroundedContext,
    found: list[str],
    missing: list[str],
    *,
    prose: str | None = None,
    title: str = "Grounding report",
) -> str:
    """``<article class="report">`` with the header, findings, phrases not identified, the findings table and
    the disclaimer; ``prose`` (a language model's rewrite) follows as preformatted, escaped text."""
    out = ['<article class="report">', f"<h1>{escape(title)}</h1>", '<ul class="report-header">']
    for label, text in header_items(ctx):
        value = f"<code>{escape(text)}</code>" if label == "Source" else escape(text)
        out.append(f"<li><strong>{escape(label)}:</strong> {value}</li>")
    out += ["</ul>", "<h2>Findings</h2>", *_list(found, "None above the score threshold.")]
    if missing:  # as the markdown: no section when every phrase was found
        out += ["<h2>Not identified</h2>", *_list(missing, "")]
    out += ["<h2>Findings table</h2>", "<table>", "<thead><tr>"]
    out += [f"<th>{escape(h)}</th>" for h in table_head(ctx)]
    out += ["</tr></thead>", "<tbody>"]
    for f in ctx.findings:
        out.append("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in table_cells(f)) + "</tr>")
    out += ["</tbody>", "</table>", f'<p class="disclaimer"><em>{escape(DISCLAIMER)}</em></p>']
    if prose:
        out += [
            "<h2>Rewritten by a language model</h2>",
            "<p><em>Unverified rewrite of the report above.</em></p>",
            f'<pre class="prose">{escape(prose.strip())}</pre>',
        ]
    out.append("</article>")
    return "\n".join(out)
