"""report.html with ``interactive``: the Pareto plot as SVG (intervals when results hold them), the pairwise
comparisons, sortable tables, and the page still asking for nothing outside itself (no browser needed)."""

from __future__ import annotations

import json
import re

from segbench.report import write_report
from segbench.report.svgplot import interval

ROWS = [
    {"model": "a", "backend": "eager", "miou": 0.61, "miou_interval": [0.58, 0.64], "latency_ms_p50": 10.0,
     "iou": {"sky": 0.9}},
    {"model": "b", "backend": "eager", "miou": 0.55, "latency_ms_p50": 5.0, "iou": {"sky": 0.8}},
    {"model": "a", "backend": "onnxruntime", "miou": 0.60, "latency_ms_p50": 4.0, "iou": {"sky": 0.7}},
]  # fmt: skip


def test_interactive_page(tmp_path):
    files = write_report(tmp_path, rows=ROWS, class_names=["sky"], palette=None, grid=None, env={}, settings={},
                         interactive=True)  # fmt: skip
    page = files["report_html"].read_text()
    svg = re.search(r'<div class="plot" id="sb-pareto">(.*?)</div></div>', page, re.S).group(1)
    tips = re.findall(r'data-tip="([^"]*)"', svg)
    assert len(tips) == 3 and "mIoU 61.0% [58.0, 64.0]" in tips[0] and "[" not in tips[1].split("mIoU")[1]
    assert sorted(set(re.findall(r'data-backend="([^"]*)"', svg))) == ["eager", "onnxruntime"]
    assert svg.count('class="bar"') == 1  # the interval drawn as an error bar
    assert page.count("<script>") == 1 and "sortTable" in page and "<script src" not in page
    assert not re.search(r"https?://", page)
    md = files["report_md"].read_text()
    assert "](pareto.png)" in md and "<svg" not in md  # Markdown keeps the PNG


def test_comparisons_rendered_when_results_have_them(tmp_path, monkeypatch):
    import segbench.report.write as write

    real = write.results_json
    comparisons = [{"a": "a", "b": "b", "difference": 0.06, "interval": [0.01, 0.11], "significant": True,
                    "statement": "a beats b"}]  # fmt: skip

    def with_comparisons(results):  # as issue 15's results.json: a top-level comparisons list
        results["comparisons"] = comparisons
        return real(results)

    monkeypatch.setattr(write, "results_json", with_comparisons)
    files = write_report(tmp_path, rows=ROWS, class_names=["sky"], palette=None, grid=None, env={}, settings={})
    md = files["report_md"].read_text()
    assert "## Model comparisons" in md and "| a | b | +6.0 | [+1.0, +11.0] | yes | a beats b |" in md
    assert json.loads(files["results_json"].read_text())["comparisons"][0]["statement"] == "a beats b"


def test_interval_forms():
    assert interval([0.1, 0.2]) == (0.1, 0.2) and interval({"low": 0.1, "high": 0.2}) == (0.1, 0.2)
    assert interval({"lo": 0.1, "hi": 0.2}) == (0.1, 0.2)
    assert interval(None) is None and interval([0.1]) is None and interval([None, 0.2]) is None
