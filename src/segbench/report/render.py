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

Text may hold inline Markdown `code` and **bold**; in HTML everything else is escaped. The HTML page has
inline CSS and no external resources.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field


@dataclass
class Table:
    """A table of text cells."""

    headers: list[str]
    rows: list[list[str]]
    align: list[str]  # "l" or "r" per column
    bold: set[tuple[int, int]] = field(default_factory=set)  # (row, col) cells to emphasise


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
    return "\n\n".join(out) + "\n"


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#1f2328;
  background:#fff;margin:0;line-height:1.5}
main{max-width:1200px;margin:0 auto;padding:24px}
h1{font-size:1.8em;border-bottom:1px solid #d0d7de;padding-bottom:.3em}
h2{font-size:1.35em;border-bottom:1px solid #eaeef2;padding-bottom:.2em;margin-top:1.6em}
h3{font-size:1.1em}
.table-wrap{overflow-x:auto}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
th,td{border:1px solid #d0d7de;padding:4px 10px;vertical-align:top}
th{background:#f6f8fa}
tr:nth-child(even) td{background:#fafbfc}
td.r,th.r{text-align:right;font-variant-numeric:tabular-nums}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.9em;
  background:#f3f4f6;padding:.1em .3em;border-radius:4px}
pre{background:#f6f8fa;padding:10px;overflow-x:auto;border-radius:6px}
pre code{background:none;padding:0}
figure{margin:1em 0}
img{max-width:100%;height:auto;border:1px solid #eaeef2}
"""


def _html_table(t: Table) -> str:
    cls = [' class="r"' if a == "r" else "" for a in t.align]
    head = "<tr>" + "".join(f"<th{cls[j]}>{html.escape(h)}</th>" for j, h in enumerate(t.headers)) + "</tr>"
    body = []
    for r, row in enumerate(t.rows):
        cells = []
        for j, c in enumerate(row):
            text = html.escape(c)
            if (r, j) in t.bold:
                text = f"<strong>{text}</strong>"
            cells.append(f"<td{cls[j]}>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return '<div class="table-wrap"><table><thead>' + head + "</thead><tbody>" + "".join(body) + "</tbody></table></div>"


def render_html(blocks: list[tuple], title: str, images: dict[str, bytes]) -> str:
    """The document as one HTML page.

    Args:
        blocks: The document.
        title: The page title.
        images: File name -> PNG bytes of every ``img`` block's file.

    Raises:
        KeyError: If an ``img`` block names a file missing from ``images``.
    """
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{html.escape(title)}</title>", f"<style>{CSS}</style>", "</head>", "<body>", "<main>"]
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
    out += ["</main>", "</body>", "</html>"]
    return "\n".join(out) + "\n"
