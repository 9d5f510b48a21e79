"""render_report and `reslab report DIR`: files, self-containment, escaping, honest NaN/inf,
re-rendering from results.json alone (byte-identical), the figure cache, and one-line errors."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from reslab.cli import main
from reslab.environment import git_state
from reslab.report import ReportError, collect_env, load_results, render_report
from reslab.report.sample import sample_results
from reslab.report.values import fmt_duration, fmt_mean_std, fmt_value, paired_rows, unique_slugs

EVIL = "<script>alert('x')</script> & <b>bold</b>"


def evil_study(base: dict) -> dict:
    """A study with markup in every text field, NaN/inf numbers and a figure labelled with markup."""
    study = json.loads(json.dumps(base))  # deep copy
    study.update(
        id="escaping",
        claim=f"The claim {EVIL}.",
        verdict_rule=f"rule {EVIL}",
        evidence=[f"check {EVIL}"],
        numbers={f"key {EVIL}": f"value {EVIL}", "diverged loss": math.nan, "blow-up": -math.inf},
        anchors={"source": f"paper {EVIL}", f"key {EVIL}": 1.5},
        setup={f"setup {EVIL}": {"inner": EVIL}},
        notes=f"note {EVIL}\n\nsecond paragraph",
        sources=[EVIL],
        key_number=f"kn {EVIL}",
    )
    study["figures"] = [
        {"kind": "lines", "title": f"fig {EVIL}", "series": [{"label": EVIL, "x": [0, 1, 2], "y": [1, math.nan, 2]}]}
    ]
    return study


def write_results(directory: Path, data: dict) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "results.json").write_text(json.dumps(data))
    return directory


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """One cold render of the sample (5 studies, every verdict and figure kind) plus the evil study."""
    data = sample_results(5)
    data["studies"].append(evil_study(data["studies"][0]))
    out = write_results(tmp_path_factory.mktemp("report"), data)
    return out, render_report(out), data


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs: list[str] = []
        self.tags: list[str] = []
        self.ids: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "action", "srcset", "poster", "data"):
                self.refs.append(value or "")
            if name == "id":
                self.ids.append(value or "")


def test_writes_html_markdown_and_one_file_per_figure(report):
    out, paths, data = report
    assert paths.html == out / "report.html" and paths.markdown == out / "report.md"
    assert paths.problems == []
    names = sorted(p.name for p in (out / "figures").iterdir() if p.suffix in (".svg", ".png"))
    assert names == sorted(p.name for p in paths.figures)
    # degradation 2, lesion 2, shattered 4, paths 1 (a panel of three), diverging 0, escaping 1
    assert len(names) == 10
    assert all(re.fullmatch(r"[a-z0-9-]+-\d+\.(svg|png)", n) for n in names)
    assert {n.split(".")[1] for n in names if n.startswith("shattered")} == {"svg", "png"}
    md = paths.markdown.read_text()
    linked = re.findall(r"!\[[^\]]*\]\(figures/([^)]+)\)", md)
    assert sorted(linked) == names
    assert not list(out.glob("**/*.tmp")) and not list(out.glob("**/.*.tmp"))


def test_html_is_self_contained(report):
    out, _, _ = report
    html = (out / "report.html").read_text()
    parser = Links()
    parser.feed(html)
    assert parser.refs and all(r.startswith(("#", "data:image/")) for r in parser.refs), parser.refs
    assert "script" not in parser.tags and "link" not in parser.tags and "iframe" not in parser.tags
    assert "@import" not in html and "url(" not in html
    assert "default-src 'none'" in html  # the CSP forbids requests even if something slipped through
    for href in (r for r in parser.refs if r.startswith("#")):
        assert href[1:] in parser.ids  # every in-page link has a target


def test_summary_and_sections_cover_every_study_and_verdict(report):
    out, _, data = report
    html = (out / "report.html").read_text()
    summary = html.split("<section id='summary'>")[1].split("</section>")[0]
    assert summary.count("<tr>") == 1 + len(data["studies"])
    for study in data["studies"]:
        assert f'id="study-{study["id"]}"' in html and f"href='#study-{study['id']}'" in summary
    for verdict in ("holds", "fails", "inconclusive"):
        assert f'<span class="badge {verdict}">{verdict}</span>' in html
    assert "45.2 ± 1.3" in html  # mean ± std, with the std at two significant digits
    assert "Papers' numbers: He2015 Table 6" in html
    assert "python" in html.split("id='environment'")[1] and "0" * 40 in html
    diverging = html.split('id="study-diverging"')[1].split("</section>")[0]
    assert "<figure" not in diverging  # a study with no figures has no figure block


def test_every_text_is_escaped(report):
    out, _, _ = report
    html = (out / "report.html").read_text()
    assert "<script" not in html and "<b>bold" not in html
    escaped = "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;"
    section = html.split('id="study-escaping"')[1].split("</section>")[0]
    # claim, rule, evidence, numbers key+value, anchors, setup key+value, notes, sources, figure caption
    assert section.count(escaped) >= 10
    assert html.count(escaped) >= 12  # plus the summary's claim and key number
    md = (out / "report.md").read_text()
    assert "<script" not in md and "<b>" not in md
    assert md.count("&lt;script>alert('x')&lt;/script> &amp; &lt;b>bold&lt;/b>") >= 12
    svg = (out / "figures" / "escaping-1.svg").read_bytes()
    assert b"<script" not in svg and b"&lt;script&gt;" in svg


def test_nan_and_inf_are_shown_honestly(report):
    out, _, _ = report
    html = (out / "report.html").read_text()
    section = html.split('id="study-escaping"')[1].split("</section>")[0]
    assert "n/a (NaN)" in section and "−inf" in section
    assert "Not shown: series" in section and "1 of 3 values are NaN (not drawn)" in section
    diverging = html.split('id="study-diverging"')[1].split("</section>")[0]
    assert "+inf" in diverging and "n/a (NaN)" in diverging
    assert "n/a (NaN)" in (out / "report.md").read_text()


def test_rerender_from_results_json_alone_is_byte_identical(report, tmp_path):
    out, _, _ = report
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    shutil.copy(out / "results.json", fresh / "results.json")
    assert main(["report", str(fresh)]) == 0
    for name in ("report.html", "report.md"):
        assert (fresh / name).read_bytes() == (out / name).read_bytes(), name
    for fig in (out / "figures").glob("*.*g"):
        assert (fresh / "figures" / fig.name).read_bytes() == fig.read_bytes(), fig.name


def test_rerender_reuses_unchanged_figures_and_drops_stale_ones(report, tmp_path):
    out, _, data = report
    work = tmp_path / "work"
    shutil.copytree(out, work)
    before = {p.name: p.stat().st_mtime_ns for p in (work / "figures").iterdir()}
    html_before = (work / "report.html").read_bytes()
    render_report(work)
    after = {p.name: p.stat().st_mtime_ns for p in (work / "figures").iterdir()}
    assert {k: v for k, v in after.items() if k != ".manifest.json"} == {
        k: v for k, v in before.items() if k != ".manifest.json"
    }
    assert (work / "report.html").read_bytes() == html_before
    # change one figure's data and drop the shattered study: only that figure is redrawn
    changed = json.loads(json.dumps(data))
    changed["studies"][1]["figures"][1]["series"][0]["y"][0] += 1.0
    del changed["studies"][2]
    write_results(work, changed)
    render_report(work)
    names = {p.name for p in (work / "figures").iterdir()}
    assert not any(n.startswith("shattered") for n in names)
    assert (work / "figures" / "lesion-2.svg").read_bytes() != (out / "figures" / "lesion-2.svg").read_bytes()
    assert (work / "figures" / "lesion-1.svg").stat().st_mtime_ns == before["lesion-1.svg"]


def test_a_figure_that_cannot_be_drawn_is_reported_in_the_page(tmp_path):
    data = sample_results(1)
    data["studies"][0]["figures"][0]["series"][0]["y"] = [1.0]  # x has 101 values
    paths = render_report(write_results(tmp_path, data))
    assert len(paths.problems) == 1 and "101 x values and 1 y values" in paths.problems[0]
    assert "could not be drawn: series &#x27;plain-20 train&#x27; has 101 x values" in paths.html.read_text()
    assert "could not be drawn" in paths.markdown.read_text()
    assert [p.name for p in paths.figures] == ["degradation-2.svg"]


def test_empty_partial_report_and_unsafe_or_duplicate_ids(tmp_path):
    empty = render_report(write_results(tmp_path / "empty", {"studies": []}))
    assert "No study has finished yet." in empty.html.read_text()
    assert "The environment was not recorded." in empty.html.read_text()
    data = sample_results(2)
    data["studies"][1]["id"] = "../../Degradation"
    data["studies"][0]["id"] = "degradation"
    paths = render_report(write_results(tmp_path / "dup", data))
    assert all(p.parent == tmp_path / "dup" / "figures" for p in paths.figures)
    html = paths.html.read_text()
    assert 'id="study-degradation"' in html and 'id="study-degradation-2"' in html
    assert unique_slugs(["a", "a", "a-2", "A"]) == ["a", "a-2", "a-2-2", "a-3"]


def test_a_failed_render_leaves_the_previous_report_intact(tmp_path, monkeypatch):
    paths = render_report(write_results(tmp_path, sample_results(1)))
    before = paths.html.read_bytes()

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("reslab.report.render.render_html", broken)
    with pytest.raises(RuntimeError):
        render_report(tmp_path)
    assert paths.html.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reslab", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "results.json not found"),
        ("{not json", "is not valid JSON (line 1, column 2"),
        ("[1, 2]", "must hold a JSON object"),
        ('{"studies": {}}', "has no 'studies' list"),
        ('{"studies": [{"id": "x"}]}', "study #1 ('x') does not match the StudyResult schema"),
        ('{"studies": [{"id": "x", "claim": "c", "scale": "quick", "seeds": 1, "verdict": "maybe",'
         ' "verdict_rule": "r", "numbers": {}, "anchors": {}}]}', "verdict must be one of"),
    ],
)  # fmt: skip
def test_missing_or_corrupt_results_is_one_line_exit_2(tmp_path, capsys, content, message):
    if content is not None:
        (tmp_path / "results.json").write_text(content)
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("reslab: error: ") and message in err
    assert not (tmp_path / "report.html").exists()


def test_cli_process_errors_are_one_line_without_traceback(tmp_path):
    """The same through a real process: exit 2, one stderr line, no traceback."""
    proc = run_cli("report", str(tmp_path / "nowhere"))
    assert proc.returncode == 2 and "is not a directory" in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    (tmp_path / "results.json").write_text('{"studies": [}')
    proc = run_cli("report", str(tmp_path))
    assert proc.returncode == 2 and "is not valid JSON" in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_cli_success_and_warnings(tmp_path, capsys):
    with pytest.raises(ReportError, match="is not a directory"):
        load_results(tmp_path / "nowhere")
    data = sample_results(5)
    data["studies"] = data["studies"][4:]  # the study without figures: fast
    write_results(tmp_path, data)
    assert main(["report", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert "report.html" in out and err == ""
    data["studies"][0]["figures"] = [{"kind": "pie", "title": "p"}]
    write_results(tmp_path, data)
    assert main(["report", str(tmp_path)]) == 0  # the report is written; the bad figure is a warning
    assert capsys.readouterr().err.startswith("reslab: warning: diverging: figure 1 ('p') could not be drawn")


def test_value_formatting():
    assert fmt_mean_std(45.234, 1.27) == "45.2 ± 1.3"
    assert fmt_mean_std(0.7234, 0.0123) == "0.723 ± 0.012"
    assert fmt_mean_std(12.0, 0.0) == "12 ± 0"
    assert fmt_value({"mean": math.nan, "std": 1.0}) == "n/a (NaN) ± 1"
    assert fmt_value({"mean": 5.0, "std": 0.5, "n": 3}) == "5.00 ± 0.50 (n=3)"
    assert fmt_value(853018) == "853,018" and fmt_value(1.5e-5) == "1.500e-05" and fmt_value(True) == "yes"
    assert fmt_value(list(range(20))).endswith("… (20 values)]")
    assert fmt_duration(4.25) == "4.2 s" and fmt_duration(125) == "2 min 05 s" and fmt_duration(3720) == "1 h 02 min"
    rows, source = paired_rows(
        {"err": {"r20": 8.1}, "only ours": 1}, {"source": "He2015", "err": {"r20": 8.75}, "x": 2}
    )
    assert source == "He2015"
    assert rows == [("err / r20", "8.1", "8.75"), ("only ours", "1", ""), ("x", "", "2")]


def test_collect_env_describes_versions_hardware_and_commit(tmp_path):
    env = collect_env()
    for key in ("python", "torch", "numpy", "matplotlib", "platform", "cpu", "cpu_cores", "gpu", "git_commit"):
        assert env[key] not in (None, ""), key
    assert isinstance(env["cpu_cores"], int) and env["cpu_cores"] >= 1
    assert re.fullmatch(r"[0-9a-f]{40}", env["git_commit"])  # the tests run in a git checkout
    assert isinstance(env["git_dirty"], bool)
    json.dumps(env)  # results.json must be able to hold it
    assert git_state(tmp_path)["git_commit"].startswith("not a git checkout")


def test_markdown_text_cannot_start_markup():
    from reslab.report.markdown import md

    assert md("a | b *c* _d_ [e](f) `g`") == r"a \| b \*c\* \_d\_ \[e\](f) \`g\`"
    assert md("<img src=x> & co") == "&lt;img src=x> &amp; co"
    assert [md(t) for t in ("# h", "- l", "> q", "12. n", "3.5 ok")] == [r"\# h", r"\- l", r"\> q", r"12\. n", "3.5 ok"]
    assert md("two\nlines  and   spaces") == "two lines and spaces"
