"""The report layer: results.json -> one self-contained HTML page, Markdown and figure files.

It reads result files only (never runs anything), so ``reslab report DIR`` can re-render a
report anywhere from ``DIR/results.json`` alone.
"""

from ..environment import collect_env
from .load import RESULTS_FILE, ReportError, Results, load_results
from .render import ReportPaths, render_report

__all__ = ["RESULTS_FILE", "ReportError", "ReportPaths", "Results", "collect_env", "load_results", "render_report"]
