"""One document, two renderings: the report's blocks as Markdown and as one self-contained HTML page.

A document is a list of blocks, each a tuple:

``("h", level, text)``
    A heading of ``level`` 1-3.
``("p", text)``
    A paragraph.
``("ul", [text, ...])``
    A bulleted list.
``("code", text)``
    Preformatted text (an error message), shown verbatim.
``("img", alt, file_name)``
    A figure: linked by relative path in Markdown, inlined as a base64 data URI in HTML.
``("table", Table)``
    A table.
``("raw", html)``
    Trusted HTML (an inline SVG plot, the image browser), shown in HTML only.
``("alt", html_blocks, md_blocks)``
    Different blocks for each rendering: ``html_blocks`` in HTML, ``md_blocks`` in Markdown.
``("details", summary, blocks)``
    Folded ``blocks``: a ``<details>`` element opened by clicking ``summary`` in HTML; in Markdown
    ``summary`` as a bold line, then the blocks.

Text may hold inline Markdown `code` and **bold**; in HTML everything else is escaped. The HTML page has
inline CSS and no external resources; with ``interactive``, also the inline script of
``assets/report.js`` (sortable tables, the Pareto plot's tooltips, the image browser).
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Table:
    """A table of text cells."""

    headers: list[str]
    rows: list[list[str]]
    align: list[str]  # "l" or "r" per column
    bold: set[tuple[int, int]] = field(default_factory=set)  # (row, col) cells to emphasise
    links: dict[tuple[int, int], str] = field(default_factory=dict)  # (row, col) -> href, HTML only
    id: str | None = None  # the HTML table's id


_INLINE = re.compile(r"(`[^`]*`)")


def inline_html(text: str) -> str:
    """Tiny inline Markdown -> HTML: `code` and **bold**; everything else escaped."""
    parts = []
    for chunk in _INLINE.split(text):
        if len(chunk) >= 2 and chunk.startswith("`") and chunk.endswith("`"):
            parts.append(f"<code>{html.escape(chunk[1:-1])}</code>")
        else:
            parts.append(re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html.escape(chunk)))
    return "".join(parts)


def _md_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("\r", " ")


def _md_table(t: Table) -> str:
    lines = ["| " + " | ".join(_md_cell(h) for h in t.headers) + " |",
             "|" + "|".join("---:" if a == "r" else ":---" for a in t.align) + "|"]
    for r, row in enumerate(t.rows):
        cells = [(f"**{_md_cell(c)}**" if (r, j) in t.bold else _md_cell(c)) for j, c in enumerate(row)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_md(blocks: list[tuple]) -> str:
    """The document as Markdown, blocks separated by blank lines, ending in a newline."""
    out: list[str] = []
    for b in blocks:
        kind = b[0]
        if kind == "h":
            out.append("#" * b[1] + " " + b[2])
        elif kind == "p":
            out.append(b[1])
        elif kind == "ul":
            out.append("\n".join(f"- {item}" for item in b[1]))
        elif kind == "code":
            fence = "```"
            while fence in b[1]:
                fence += "`"
            out.append(f"{fence}text\n{b[1]}\n{fence}")
        elif kind == "img":
            out.append(f"![{b[1]}]({b[2]})")
        elif kind == "table":
            out.append(_md_table(b[1]))
        elif kind == "alt":
            out.append(render_md(b[2]).rstrip("\n"))
        elif kind == "details":
            out.append(f"**{b[1]}**")
            out.append(render_md(b[2]).rstrip("\n"))
    return "\n\n".join(o for o in out if o) + "\n"


def asset(name: str) -> str:
    """Text of a file shipped in ``segbench/report/assets`` (the report page's CSS and JavaScript)."""
    return (Path(__file__).parent / "assets" / name).read_text(encoding="utf-8")


def _html_table(t: Table) -> str:
    cls = [' class="r"' if a == "r" else "" for a in t.align]
    head = "<tr>" + "".join(f"<th{cls[j]}>{html.escape(h)}</th>" for j, h in enumerate(t.headers)) + "</tr>"
    body = []
    for r, row in enumerate(t.rows):
        cells = []
        for j, c in enumerate(row):
            text = html.escape(c)
            if (r, j) in t.links:
                text = f'<a href="{html.escape(t.links[(r, j)])}">{text}</a>'
            if (r, j) in t.bold:
                text = f"<strong>{text}</strong>"
            cells.append(f"<td{cls[j]}>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    ident = f' id="{html.escape(t.id)}"' if t.id else ""
    return f'<div class="table-wrap"><table{ident}><thead>' + head + "</thead><tbody>" + "".join(body) + "</tbody></table></div>"


def _html_blocks(blocks: list[tuple], images: dict[str, bytes]) -> list[str]:
    out = []
    for b in blocks:
        kind = b[0]
        if kind == "h":
            out.append(f"<h{b[1]}>{inline_html(b[2])}</h{b[1]}>")
        elif kind == "p":
            out.append(f"<p>{inline_html(b[1])}</p>")
        elif kind == "ul":
            out.append("<ul>" + "".join(f"<li>{inline_html(i)}</li>" for i in b[1]) + "</ul>")
        elif kind == "code":
            out.append(f"<pre><code>{html.escape(b[1])}</code></pre>")
        elif kind == "img":
            data = base64.b64encode(images[b[2]]).decode("ascii")
            out.append(f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(b[1])}"></figure>')
        elif kind == "table":
            out.append(_html_table(b[1]))
        elif kind == "raw":
            out.append(b[1])
        elif kind == "alt":
            out += _html_blocks(b[1], images)
        elif kind == "details":
            out.append(f"<details><summary>{inline_html(b[1])}</summary>")
            out += _html_blocks(b[2], images)
            out.append("</details>")
    return out


def render_html(blocks: list[tuple], title: str, images: dict[str, bytes], interactive: bool = False) -> str:
    """The document as one HTML page: inline CSS (light and dark colour schemes, print styles), no external
    resources.

    Args:
        blocks: The document.
        title: The page title.
        images: File name -> PNG bytes of every ``img`` block's file.
        interactive: Add the inline script (sortable tables, Pareto tooltips, image browser).

    Raises:
        KeyError: If an ``img`` block names a file missing from ``images``.
    """
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           '<meta name="color-scheme" content="light dark">',
           f"<title>{html.escape(title)}</title>", f"<style>{asset('report.css')}</style>", "</head>", "<body>",
           "<main>", *_html_blocks(blocks, images), "</main>"]  # fmt: skip
    if interactive:
        code = asset("report.js") + "\n" + asset("browser.js")
        out.append("<script>" + code.replace("</", "<\\/") + "</script>")
    out += ["</body>", "</html>"]
    return "\n".join(out) + "\n"
