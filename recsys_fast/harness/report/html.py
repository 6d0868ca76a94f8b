"""The report as one self-contained HTML page (``recsys-fast report --html``).

The page is rendered from the very lines the report writes to ``README.md`` (so the tables are
the same), with every plot inlined as a base64 ``data:image/png`` URI and the style sheet in a
``<style>`` element: no script, no external file, nothing fetched from the network. It can be
opened from a copied folder, an e-mail attachment or an offline machine (asv's published pages
load jQuery and flot from CDNs and do not render offline).

Only the Markdown the report emits is understood: ``#``-headings, ``-`` lists (one level of
nesting), pipe tables, ``![alt](path)`` image lines, paragraphs, ``**bold**`` and ```code```.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from recsys_fast.errors import RecsysFastError

MARKER = "<!-- written by `recsys-fast report --html`; regenerate, do not edit -->"
STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 80em; padding: 0 1em;
       color: #222; line-height: 1.4; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #bbb; padding: 0.2em 0.5em; text-align: left; vertical-align: top; }
th { background: #eee; }
tr:nth-child(even) td { background: #f8f8f8; }
code { background: #f0f0f0; padding: 0 0.2em; }
img { max-width: 100%; display: block; margin: 0.5em 0 1.5em; }
"""
_IMAGE = re.compile(r"^!\[(?P<alt>[^\]]*)\]\((?P<src>[^)\s]+)\)$")
_CELL_SPLIT = re.compile(r"(?<!\\)\|")


class HtmlReportError(RecsysFastError):
    """A plot the page should inline cannot be read."""


def _inline(text: str) -> str:
    """Escape, then ``**bold**`` and ```code``` (code spans set aside first, so their stars
    stay literal and a bold run may hold a code span)."""
    codes: list[str] = []

    def stash(m: re.Match) -> str:
        codes.append(m[1])
        return f"\x00{len(codes) - 1}\x00"

    out = html.escape(re.sub(r"`([^`]*)`", stash, text))
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"\x00(\d+)\x00", lambda m: f"<code>{html.escape(codes[int(m[1])])}</code>", out)


def _cells(row: str) -> list[str]:
    inner = row.strip().removeprefix("|").removesuffix("|")
    return [c.strip().replace("\\|", "|") for c in _CELL_SPLIT.split(inner)]


def _data_uri(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise HtmlReportError(f"cannot read plot {path}: {exc.strerror or exc}") from None
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _table(rows: list[str]) -> list[str]:
    header, body = _cells(rows[0]), rows[2:]  # rows[1] is the |---| separator
    out = ["<table>", "<thead><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in header)
           + "</tr></thead>", "<tbody>"]
    out += ["<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in _cells(r)) + "</tr>"
            for r in body]
    return out + ["</tbody>", "</table>"]


def _list(items: list[str]) -> list[str]:
    out, nested = ["<ul>"], False
    for raw in items:
        sub = raw.startswith("  ")
        if sub and not nested:
            out.append("<ul>")
        elif not sub and nested:
            out.append("</ul>")
        nested = sub
        out.append(f"<li>{_inline(raw.strip().removeprefix('- ').rstrip())}</li>")
    if nested:
        out.append("</ul>")
    return out + ["</ul>"]


def markdown_to_html(lines: list[str], base: Path) -> str:
    """The body of the page from the report's Markdown lines; images are read from ``base``."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i].rstrip()
        if not line or line.startswith("<!--"):
            i += 1
        elif line.startswith("#"):
            level = min(len(line) - len(line.lstrip("#")), 6)
            out.append(f"<h{level}>{_inline(line[level:].strip())}</h{level}>")
            i += 1
        elif line.startswith("|"):
            j = i
            while j < len(lines) and lines[j].startswith("|"):
                j += 1
            out += _table(lines[i:j])
            i = j
        elif line.startswith("- "):
            j = i
            while j < len(lines) and (lines[j].startswith("- ") or lines[j].startswith("  - ")):
                j += 1
            out += _list(lines[i:j])
            i = j
        elif m := _IMAGE.match(line):
            alt = html.escape(m["alt"], quote=True)
            out.append(f'<figure><img alt="{alt}" src="{_data_uri(base / m["src"])}">'
                       f"<figcaption>{html.escape(m['alt'])}</figcaption></figure>")
            i += 1
        else:
            out.append(f"<p>{_inline(line)}</p>")
            i += 1
    return "\n".join(out)


def render_page(lines: list[str], base: Path, title: str = "recsys_fast benchmark results"
                ) -> str:
    """A complete, self-contained HTML document."""
    return "\n".join([
        "<!DOCTYPE html>", MARKER, '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title>", f"<style>{STYLE}</style>", "</head>", "<body>",
        markdown_to_html(lines, base), "</body>", "</html>", ""])


def written_by_report(path: Path) -> bool:
    """``path`` is absent, or a page this module wrote (its marker in the first lines)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            head = [fh.readline().strip() for _ in range(3)]
    except FileNotFoundError:
        return True
    except OSError:  # a folder, unreadable...: not ours to replace
        return False
    return MARKER in head
