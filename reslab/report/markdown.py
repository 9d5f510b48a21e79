"""The report as Markdown: the same content as the HTML page, figures as links into ``figures/``.

Text from the data is escaped so that it renders as written: Markdown punctuation gets a
backslash, ``<`` and ``&`` become entities (so no HTML tag or entity can start), and table
cells cannot break their table.
"""

from __future__ import annotations

import re
from typing import Any

from .load import Results
from .page import TITLE, StudyView, env_rows, meta_items, tally, tally_words
from .values import fmt_value

FIGURES_DIR = "figures"
_SPECIAL = re.compile(r"([\\`*_\[\]|~])")
_LINE_START = re.compile(r"^([#+=>-]|\d+(?=[.)](?:\s|$)))")  # would start a heading, quote or list item
_ENTITIES = {"&": "&amp;", "<": "&lt;"}  # entities work in every Markdown flavour; no tag can start


def md(value: Any) -> str:
    """One line of literal text, safe in paragraphs, lists and table cells."""
    text = value if isinstance(value, str) else fmt_value(value)
    text = _SPECIAL.sub(r"\\\1", " ".join(text.split()))
    text = _LINE_START.sub(lambda m: m.group() + "\\" if m.group()[0].isdigit() else "\\" + m.group(), text)
    return re.sub(r"[&<]", lambda m: _ENTITIES[m.group()], text)


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines + [""]


def _setup(value: Any, depth: int = 0) -> list[str]:
    lines = []
    for k, v in value:
        if isinstance(v, dict) and v and not ("mean" in v and "std" in v):
            lines.append(f"{'  ' * depth}- **{md(str(k))}**:")
            lines += _setup(list(v.items()), depth + 1)
        else:
            lines.append(f"{'  ' * depth}- **{md(str(k))}**: {md(v)}")
    return lines


def study_md(view: StudyView) -> list[str]:
    s = view.study
    out = [f'<a id="{view.anchor}"></a>', "", f"## {view.index}. {md(s.id)} — {s.verdict.upper()}", ""]
    out += [
        f"**Claim.** {md(s.claim)}",
        "",
        f"**Verdict: {s.verdict}.** Rule: {md(s.verdict_rule or 'not stated')}",
        "",
    ]
    if s.evidence:
        out += ["**Evidence**", ""] + [f"- {md(x)}" for x in s.evidence] + [""]
    rows, source = view.numbers_table()
    out += ["**Our numbers and the papers'**", ""]
    if rows:
        paper = bool(s.anchors)
        head = ["quantity", md(view.ours_header)] + (["paper"] if paper else [])
        out += _table(head, [[md(q), md(o)] + ([md(p)] if paper else []) for q, o, p in rows])
        if source:
            out += [f"Papers' numbers: {md(source)}", ""]
    else:
        out += ["No numbers were recorded.", ""]
    for f in view.figures:
        caption = f"**Figure {f.number}.** {md(f.text)}"
        if f.file.error:
            out += [f"*This figure could not be drawn: {md(f.file.error)}*", "", caption, ""]
            continue
        out += [f"![{md(f.title or 'figure')}]({FIGURES_DIR}/{f.file.name})", "", caption, ""]
        out += [f"*Not shown: {md(n)}.*" for n in f.file.notes] + ([""] if f.file.notes else [])
    out += ["**What was run**", ""] + _setup(view.setup_rows()) + [""]
    if s.notes:
        out += ["**Notes.** " + "\n\n".join(md(p) for p in s.notes.split("\n\n") if p.strip()), ""]
    if view.stability:
        out += [f"**Stability.** {md(view.stability)}", ""]
    sources = f"Sources: {md(', '.join(s.sources))} · " if s.sources else ""
    out += [f"{sources}Took {md(view.elapsed)} · [back to the summary](#summary)", ""]
    return out


def render_markdown(results: Results, views: list[StudyView]) -> str:
    out = [f"# {TITLE}", ""]
    out += [" · ".join(f"{md(k)} **{md(v)}**" for k, v in meta_items(results)), ""]
    counts = ", ".join(tally_words(v, n) for v, n in tally(results.studies) if n)
    if counts:
        out += [f"Verdicts: {counts}.", ""]
    out += ['<a id="summary"></a>', "", "## Claims and verdicts", ""]
    if views:
        rows = [
            [str(v.index), f"[{md(v.study.id)}](#{v.anchor})", md(v.study.claim), f"**{v.study.verdict}**"]
            + [md(v.key_number), md(v.elapsed)]
            for v in views
        ]
        out += _table(["#", "study", "claim", "verdict", "key number", "time"], rows)
    else:
        out += ["No study has finished yet.", ""]
    for v in views:
        out += study_md(v)
    out += ['<a id="environment"></a>', "", "## Environment", ""]
    rows = [[md(k), md(v)] for k, v in env_rows(results.env)]
    out += _table(["what", "value"], rows) if rows else ["The environment was not recorded.", ""]
    out += ["Rendered by `reslab report` from results.json alone.", ""]
    return "\n".join(out)
