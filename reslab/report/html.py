"""The report as one self-contained HTML page: CSS inline, figures as data URIs, no scripts.

A Content-Security-Policy in the page forbids every request except inline styles and data
images, so the page cannot fetch anything even if some text slipped through unescaped; all
text from the data goes through ``html.escape`` regardless.
"""

from __future__ import annotations

import base64
import re
import struct
from html import escape
from typing import Any

from .figures import PNG_DPI
from .load import Results
from .page import TITLE, FigureView, StudyView, env_rows, meta_items, tally, tally_words
from .values import fmt_value

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"

CSS = """
:root { --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --soft: #f6f8fa; --link: #0550ae;
  --holds: #1a7f37; --fails: #cf222e; --inconclusive: #d29922; }
* { box-sizing: border-box; }
html { font-size: 17px; }
body { margin: 0; color: var(--fg); background: #fff; line-height: 1.55;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans",
  "Liberation Sans", sans-serif; font-variant-numeric: tabular-nums; }
.page { max-width: 62rem; margin: 0 auto; padding: 2rem 1.5rem 3rem; }
h1 { font-size: 2rem; line-height: 1.2; margin: 0 0 .4rem; letter-spacing: -.01em; }
h2 { font-size: 1.45rem; line-height: 1.25; margin: 0 0 .6rem; }
h3 { font-size: 1rem; margin: 1.4rem 0 .4rem; color: var(--muted); text-transform: uppercase;
  letter-spacing: .05em; }
p, ul, dl { max-width: 46rem; }
a { color: var(--link); text-decoration: none; }
a:hover { text-decoration: underline; }
.meta { color: var(--muted); margin: 0 0 .8rem; }
.meta b { color: var(--fg); font-weight: 600; }
.tally { display: flex; gap: .5rem; flex-wrap: wrap; margin: 0 0 2rem; }
.badge { display: inline-block; padding: .12em .6em; border-radius: 999px; font-size: .78rem;
  font-weight: 700; letter-spacing: .03em; white-space: nowrap; vertical-align: .15em;
  color: #fff; -webkit-print-color-adjust: exact; print-color-adjust: exact; }
.badge.holds { background: var(--holds); }
.badge.fails { background: var(--fails); }
.badge.inconclusive { background: var(--inconclusive); color: #241a00; }
table { border-collapse: collapse; width: 100%; margin: .4rem 0 1rem; font-size: .92rem; }
th, td { text-align: left; vertical-align: top; padding: .42rem .6rem; border-bottom: 1px solid var(--line); }
thead th { border-bottom: 2px solid var(--fg); font-size: .8rem; text-transform: uppercase;
  letter-spacing: .04em; color: var(--muted); }
td.num, th.num { text-align: right; white-space: nowrap; }
td.id { white-space: nowrap; font-weight: 600; }
tbody tr:nth-child(even) { background: var(--soft); }
.study { border-top: 1px solid var(--line); padding-top: 1.6rem; margin-top: 2.2rem; }
.study h2 .idx { color: var(--muted); font-weight: 400; margin-right: .35rem; }
.claim { font-size: 1.2rem; line-height: 1.45; margin: .2rem 0 .8rem; }
.rule { background: var(--soft); border-left: 4px solid var(--line); padding: .55rem .8rem; }
.study.holds .rule { border-left-color: var(--holds); }
.study.fails .rule { border-left-color: var(--fails); }
.study.inconclusive .rule { border-left-color: var(--inconclusive); }
.evidence li { margin: .2rem 0; }
.source, .foot, .runs { color: var(--muted); font-size: .88rem; }
figure { margin: 1.2rem 0 1.4rem; }
figure img { display: block; max-width: 100%; height: auto; margin: 0 auto; }
figcaption { color: var(--muted); font-size: .9rem; max-width: 46rem; margin: .4rem auto 0; }
figcaption .fignum { color: var(--fg); font-weight: 700; }
.note { display: block; color: #9a6700; }
.figerror { border: 2px dashed var(--fails); color: var(--fails); padding: .8rem 1rem; }
dl.setup { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; margin: .2rem 0; }
dl.setup dt { font-weight: 600; }
dl.setup dd { margin: 0; }
dl.setup dl.setup { font-size: .95em; }
footer { border-top: 2px solid var(--fg); margin-top: 3rem; padding-top: 1.2rem; }
footer table { font-size: .85rem; }
footer td:first-child { white-space: nowrap; font-weight: 600; width: 14rem; }
@media (max-width: 40rem) { html { font-size: 15px; } .page { padding: 1rem; }
  table.summary td:nth-child(3) { display: none; } table.summary th:nth-child(3) { display: none; } }
@media print {
  html { font-size: 10.5pt; }
  .page { max-width: none; padding: 0; }
  a { color: inherit; }
  .study { break-before: auto; }
  figure, tr, .rule, .claim { break-inside: avoid; }
  h2, h3 { break-after: avoid; }
  tbody tr:nth-child(even) { background: none; }
}
"""


def e(value: Any) -> str:
    """Escape any value for HTML text or attributes."""
    return escape(value if isinstance(value, str) else fmt_value(value), quote=True)


def badge(verdict: str) -> str:
    return f'<span class="badge {e(verdict)}">{e(verdict)}</span>'


def _paragraphs(text: str) -> str:
    return "".join(f"<p>{e(' '.join(p.split()))}</p>" for p in text.split("\n\n") if p.strip())


FIGURE_SCALE = 1.3  # figures are drawn at 9.5 pt text; shown 1.3x larger, all at one text size
_SVG_WIDTH = re.compile(rb'<svg[^>]*?\swidth="([0-9.]+)pt"')


def display_width(data: bytes) -> int | None:
    """CSS pixel width to show an image at, from its design size (SVG in pt, PNG at PNG_DPI)."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        (pixels,) = struct.unpack(">I", data[16:20])
        return round(pixels * 96 / PNG_DPI * FIGURE_SCALE)
    m = _SVG_WIDTH.search(data[:2000])
    return round(float(m.group(1)) * 96 / 72 * FIGURE_SCALE) if m else None


def figure_html(view: FigureView, anchor: str) -> str:
    f = view.file
    num = f'<span class="fignum">Figure {e(view.number)}.</span> '
    if f.error:
        return (
            f'<figure id="{anchor}-fig-{view.number.split(".")[-1]}"><div class="figerror">This figure could not be'
            f" drawn: {e(f.error)}</div><figcaption>{num}{e(view.text)}</figcaption></figure>"
        )
    uri = f"data:{f.mime};base64," + base64.b64encode(f.data).decode("ascii")
    width = display_width(f.data)
    size = f' width="{width}"' if width else ""
    notes = "".join(f'<span class="note">Not shown: {e(n)}.</span>' for n in f.notes)
    return (
        f'<figure id="{anchor}-fig-{view.number.split(".")[-1]}"><img src="{uri}" alt="{e(view.title or "figure")}"'
        f"{size}><figcaption>{num}{e(view.text)}{notes}</figcaption></figure>"
    )


def _setup_value(value: Any) -> str:
    if isinstance(value, dict) and value and not ("mean" in value and "std" in value):
        inner = "".join(f"<dt>{e(str(k))}</dt><dd>{_setup_value(v)}</dd>" for k, v in value.items())
        return f'<dl class="setup">{inner}</dl>'
    return e(value)


def study_html(view: StudyView) -> str:
    s = view.study
    out = [f'<section class="study {e(s.verdict)}" id="{view.anchor}">']
    out.append(f'<h2><span class="idx">{view.index}.</span>{e(s.id)} {badge(s.verdict)}</h2>')
    out.append(f'<p class="claim">{e(s.claim)}</p>')
    out.append(f'<p class="rule"><strong>Verdict rule.</strong> {e(s.verdict_rule or "not stated")}</p>')
    if s.evidence:
        out.append("<h3>Evidence</h3><ul class='evidence'>" + "".join(f"<li>{e(x)}</li>" for x in s.evidence) + "</ul>")
    rows, source = view.numbers_table()
    out.append("<h3>Our numbers and the papers'</h3>")
    if rows:
        paper = bool(s.anchors)
        head = f"<th>quantity</th><th class='num'>{e(view.ours_header)}</th>" + ("<th>paper</th>" if paper else "")
        body = "".join(
            f"<tr><td>{e(q)}</td><td class='num'>{e(o)}</td>" + (f"<td>{e(p)}</td>" if paper else "") + "</tr>"
            for q, o, p in rows
        )
        out.append(f"<table class='numbers'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        if source:
            out.append(f"<p class='source'>Papers' numbers: {e(source)}</p>")
    else:
        out.append("<p>No numbers were recorded.</p>")
    if view.figures:
        out.append("<h3>Figures</h3>" + "".join(figure_html(f, view.anchor) for f in view.figures))
    out.append("<h3>What was run</h3><dl class='setup'>")
    out.append("".join(f"<dt>{e(str(k))}</dt><dd>{_setup_value(v)}</dd>" for k, v in view.setup_rows()))
    out.append("</dl>")
    if s.notes:
        out.append("<h3>Notes</h3>" + _paragraphs(s.notes))
    if view.stability:
        out.append(f"<h3>Stability</h3><p>{e(view.stability)}</p>")
    sources = f"Sources: {e(', '.join(s.sources))} · " if s.sources else ""
    out.append(f"<p class='foot'>{sources}Took {e(view.elapsed)} · <a href='#summary'>back to the summary</a></p>")
    out.append("</section>")
    return "\n".join(out)


def summary_html(views: list[StudyView]) -> str:
    rows = "".join(
        f"<tr><td class='num'>{v.index}</td><td class='id'><a href='#{v.anchor}'>{e(v.study.id)}</a></td>"
        f"<td>{e(v.study.claim)}</td><td>{badge(v.study.verdict)}</td><td>{e(v.key_number)}</td>"
        f"<td class='num'>{e(v.elapsed)}</td></tr>"
        for v in views
    )
    head = (
        "<th class='num'>#</th><th>study</th><th>claim</th><th>verdict</th><th>key number</th><th class='num'>time</th>"
    )
    table = f"<table class='summary'><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
    if not views:
        table = "<p>No study has finished yet.</p>"
    return f"<section id='summary'><h2>Claims and verdicts</h2>{table}</section>"


def page(title: str, header: str, body: list[str]) -> str:
    """One self-contained page (the report, a probe's, a sweep's): CSS inline, no scripts, the CSP."""
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
            '<meta name="referrer" content="no-referrer">',
            f"<title>{e(title)}</title>",
            f"<style>{CSS}</style>",
            "</head>",
            "<body>",
            '<div class="page">',
            f"<header>{header}</header>",
            *body,
            "</div>",
            "</body>",
            "</html>",
            "",
        ]
    )


def render_html(results: Results, views: list[StudyView]) -> str:
    meta = " · ".join(f"{e(k)} <b>{e(v)}</b>" for k, v in meta_items(results))
    counts = "".join(f'<span class="badge {v}">{e(tally_words(v, n))}</span>' for v, n in tally(results.studies) if n)
    env = "".join(f"<tr><td>{e(k)}</td><td>{e(v)}</td></tr>" for k, v in env_rows(results.env))
    env_table = f"<table><tbody>{env}</tbody></table>" if env else "<p>The environment was not recorded.</p>"
    title = f"{TITLE} — reslab report ({results.scale or 'unknown'} scale)"
    header = f"<h1>{e(TITLE)}</h1><p class='meta'>{meta}</p><div class='tally'>{counts}</div>"
    body = [
        "<main>",
        summary_html(views),
        *[study_html(v) for v in views],
        "</main>",
        f"<footer id='environment'><h2>Environment</h2>{env_table}"
        "<p class='foot'>Rendered by <code>reslab report</code> from results.json alone.</p></footer>",
    ]
    return page(title, header, body)
