"""The roofline plot of the report (segbench.report.roofline): one point per row, on the log-log axes the ceilings
are drawn in, inline in report.html after the Pareto plot and linked from report.md as roofline.svg."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from segbench.report import write_report
from segbench.report.roofline import roofline_svg

NS = {"s": "http://www.w3.org/2000/svg"}


def _row(model, backend, intensity, achieved, peak=100.0, gemm=60.0, bw=10.0, **extra):
    return {"model": model, "backend": backend, "miou": 0.5, "latency_ms_p50": 10.0, "iou": {"sky": 0.5},
            "arithmetic_intensity_flop_per_byte": intensity, "achieved_gflop_s": achieved,
            "roofline_precision": "fp32", "roofline_peak_gflop_s": peak, "roofline_gemm_gflop_s": gemm,
            "roofline_bandwidth_gb_s": bw, "roofline_bound_gflop_s": min(peak, intensity * bw),
            "roofline_bound_ms": 1.0, "roofline_ceiling": "memory" if intensity * bw < peak else "compute",
            "roofline_fraction": achieved / min(peak, intensity * bw), **extra}  # fmt: skip


ROWS = [
    _row("a", "eager", 2.0, 20.0),  # on the memory roof: 2 FLOP/byte x 10 GB/s
    _row("b", "eager", 50.0, 100.0),  # on the compute roof
    _row("a", "channels_last", 5.0, 7.0),  # below both
]


def _numbers(d: str) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in re.findall(r"(-?[\d.]+),(-?[\d.]+)", d)]


def test_points_sit_on_the_roof_they_reach():
    rows = [{**r, "_label": f"{r['model']} ({r['backend']})"} for r in ROWS]
    svg = ET.fromstring(roofline_svg(rows, {r["_label"]: (0.1, 0.2, 0.3, 1.0) for r in rows}, standalone=True))
    circles = svg.findall("s:circle", NS)
    assert len(circles) == 3 and [c.find("s:title", NS).text for c in circles] == [r["_label"] for r in rows]
    roofs = svg.findall("s:path[@class='roof']", NS)
    assert len(roofs) == 2 and [r.get("stroke-dasharray") for r in roofs] == [None, "6 4"]  # peak, measured GEMM
    start, ridge, end = _numbers(roofs[0].get("d"))
    assert ridge[1] == end[1] and ridge[0] > start[0] and ridge[1] < start[1]  # up the slope, then flat
    (ax, ay), (bx, by), (cx, cy) = ((float(c.get("cx")), float(c.get("cy"))) for c in circles)
    # a on the slope: collinear with its ends; b on the flat part at the peak's height; c below the roof
    assert (ay - start[1]) * (ridge[0] - start[0]) == pytest.approx((ax - start[0]) * (ridge[1] - start[1]), abs=2.0)
    assert by == pytest.approx(ridge[1], abs=0.15) and bx > ridge[0]
    assert cy > ay  # 7 GFLOP/s is below 20 GFLOP/s (larger y is lower)
    # log axes: intensity 2 -> 5 -> 50 spaced as log10
    assert (bx - cx) / (cx - ax) == pytest.approx(1 / 0.39794, rel=0.01)
    labels = [t.text for t in svg.findall("s:text[@class='roof-label']", NS)]
    assert "fp32 peak 100 GFLOP/s" in labels and "fp32 measured GEMM 60.0 GFLOP/s" in labels
    assert "triad 10.0 GB/s" in labels


def test_report_draws_the_roofline_after_the_pareto_plot(tmp_path):
    files = write_report(tmp_path, rows=ROWS, class_names=["sky"], palette=None, grid=None, env={}, settings={},
                         interactive=True)  # fmt: skip
    assert files["roofline_svg"].name == "roofline.svg"
    standalone = ET.fromstring(files["roofline_svg"].read_text())  # a file that draws alone
    assert len(standalone.findall("s:circle", NS)) == len(ROWS)
    page = files["report_html"].read_text()
    plot = re.search(r'<div class="plot" id="sb-roofline">(.*?)<div class="tip" hidden></div></div>', page, re.S)
    assert plot and plot.group(1).count("<circle") == len(ROWS)
    assert page.index('id="sb-pareto"') < page.index('id="sb-roofline"') < page.index("<h2>Speed, size and memory")
    assert "data:image/png;base64" not in plot.group(0) and not re.search(r"https?://", page)
    md = files["report_md"].read_text()
    assert "## Roofline" in md and "](roofline.svg)" in md and "<svg" not in md
    assert md.index("](pareto.png)") < md.index("](roofline.svg)")
    assert "| FLOP/byte | Roofline bound (ms) | Bound by | % of roofline |" in md  # in All columns
    assert re.search(r"\| a \(channels_last\) \|.*\| 5\.00 \| 1\.00 \| memory \| 14\.0 \|", md)  # 7 / (5 x 10)
    csv = files["results_csv"].read_text().splitlines()[0].split(",")
    assert {"arithmetic_intensity_flop_per_byte", "roofline_fraction", "roofline_ceiling"} <= set(csv)


def test_no_roofline_without_counts_and_a_stale_file_removed(tmp_path):
    write_report(tmp_path, rows=ROWS, class_names=["sky"], palette=None, grid=None, env={}, settings={})
    assert (tmp_path / "roofline.svg").is_file()
    rows = [{"model": "x", "miou": 0.5, "latency_ms_p50": 3.0, "iou": {"sky": 0.5}}]  # an ONNX file: no counts
    files = write_report(tmp_path, rows=rows, class_names=["sky"], palette=None, grid=None, env={}, settings={})
    assert "roofline_svg" not in files and not (tmp_path / "roofline.svg").exists()
    md = files["report_md"].read_text()
    assert "## Roofline" in md and "No roofline: no row has both a FLOP and byte count" in md


def test_points_without_a_profile_are_drawn_without_ceilings(tmp_path):
    rows = [{"model": "a", "arithmetic_intensity_flop_per_byte": 3.0, "achieved_gflop_s": 4.0,
             "roofline_error": "no hardware profile (segbench benchmark --no-probe)"}]  # fmt: skip
    files = write_report(tmp_path, rows=rows, class_names=None, palette=None, grid=None, env={}, settings={})
    svg = ET.fromstring(files["roofline_svg"].read_text())
    assert len(svg.findall("s:circle", NS)) == 1 and not svg.findall("s:path[@class='roof']", NS)
    assert "No ceilings: no hardware profile" in files["report_md"].read_text()
