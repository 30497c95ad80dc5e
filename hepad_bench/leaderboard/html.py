"""The static, offline HTML page: every dataset's tables, figures and file links.

No external CSS or JavaScript. One inline script marks ``<body data-images>``
with ``ok`` once every figure has loaded (``broken`` otherwise), so a headless
browser can check the page with ``--dump-dom``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

from hepad_bench.leaderboard.tables import Table

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2rem auto;
       max-width: 1250px; padding: 0 1rem; color: #1b1b1b; line-height: 1.45; }
h1 { font-size: 1.7rem; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2rem; margin-top: 2.5rem; }
nav ul { columns: 2; } .provenance { color: #555; font-size: .9rem; font-style: italic; }
table { border-collapse: collapse; margin: .6rem 0 1rem; font-size: .9rem; }
th, td { border: 1px solid #d0d0d0; padding: .3rem .55rem; text-align: right; white-space: nowrap; }
th { background: #f1f3f5; } td:first-child, th:first-child { text-align: left; }
tbody tr:nth-child(even) { background: #fafafa; } td.best { font-weight: 700; background: #e8f3e8; }
.scroll { overflow-x: auto; } .notes { font-size: .88rem; color: #333; }
figure { margin: .8rem 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: .85rem; color: #555; } .files a { margin-right: 1rem; }
"""

SCRIPT = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var loaded = images.filter(function (im) { return im.complete && im.naturalWidth > 0; }).length;
  document.body.setAttribute("data-images-loaded", loaded + "/" + images.length);
  document.body.setAttribute("data-images", loaded === images.length ? "ok" : "broken");
});
"""


@dataclass
class SectionPage:
    """What the page shows for one dataset."""

    slug: str
    title: str
    tables: list[Table]
    #: (caption, relative path) of each figure
    figures: list[tuple[str, str]] = field(default_factory=list)
    #: (label, relative path) of each downloadable file
    files: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def table_html(table: Table) -> str:
    out = [f"<h3>{escape(table.title)}</h3>", f'<p class="provenance">{escape(table.provenance)}</p>',
           '<div class="scroll"><table class="leaderboard">', "<thead><tr>"]
    out += [f'<th scope="col">{escape(c)}</th>' for c in table.columns]
    out.append("</tr></thead><tbody>")
    for cells in table.rows:
        tds = "".join(f'<td class="best">{escape(c.text)}</td>' if c.bold else f"<td>{escape(c.text)}</td>" for c in cells)
        out.append(f"<tr>{tds}</tr>")
    out.append("</tbody></table></div>")
    notes = table.notes
    if notes:
        out.append('<div class="notes">')
        items = [n[2:] for n in notes if n.startswith("- ")]
        out += [f"<p>{escape(n)}</p>" for n in notes if not n.startswith("- ")]
        if items:
            out.append("<ul>" + "".join(f"<li>{escape(i)}</li>" for i in items) + "</ul>")
        out.append("</div>")
    return "\n".join(out)


def render_page(title: str, intro: str, sections: list[SectionPage]) -> str:
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{escape(title)}</title>", f"<style>{CSS}</style>", f"<script>{SCRIPT}</script>",
             "</head>", "<body>", f"<h1>{escape(title)}</h1>", f"<p>{escape(intro)}</p>", "<nav><ul>"]
    parts += [f'<li><a href="#{escape(s.slug)}">{escape(s.title)}</a></li>' for s in sections]
    parts.append("</ul></nav>")
    for section in sections:
        parts.append(f'<section id="{escape(section.slug)}">')
        parts.append(f"<h2>{escape(section.title)}</h2>")
        if section.files:
            links = "".join(f'<a href="{escape(path)}">{escape(label)}</a>' for label, path in section.files)
            parts.append(f'<p class="files">{links}</p>')
        for table in section.tables:
            parts.append(table_html(table))
        for note in section.notes:
            parts.append(f'<p class="notes">{escape(note)}</p>')
        for caption, path in section.figures:
            parts.append(f'<figure><img src="{escape(path)}" alt="{escape(caption)}" loading="eager">'
                         f"<figcaption>{escape(caption)}</figcaption></figure>")
        parts.append("</section>")
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"
