"""``--backend best``: the fastest backend within its precision's accuracy band of eager, chosen per model."""

from __future__ import annotations

import json

import pytest

from segbench.bench import select
from segbench.bench.select import BAND_POINTS, choose_best, describe_choice, expand_backends, mark_best
from segbench.cli import main


def _row(backend, ms, miou=None, agreement=None, error=None):
    return {"backend": backend, "latency_ms_p50": ms, "miou": miou, "agreement_miou": agreement, "error": error}


def test_bands_are_the_stated_ones():
    assert BAND_POINTS["int8"] == 0.5 and BAND_POINTS["bf16"] == 0.05 and BAND_POINTS["fp32"] == 0.05


def test_the_fastest_backend_within_its_band_wins():
    rows = [_row("eager", 100.0, 0.5000), _row("openvino_int8", 10.0, 0.4940),  # -0.60 points: outside 0.5
            _row("onnxruntime_int8", 20.0, 0.4960), _row("bf16", 15.0, 0.4990),  # -0.40 in; -0.10 > 0.05 out
            _row("compile_int8", 5.0, error="boom")]  # fmt: skip
    choice = choose_best(rows)
    assert choice["backend"] == "onnxruntime_int8" and choice["speedup_vs_eager"] == pytest.approx(5.0)
    assert choice["loss_points"] == pytest.approx(0.4) and choice["band_points"] == 0.5
    assert list(choice["rejected"]) == ["openvino_int8", "bf16"]  # the faster ones, fastest first
    assert "onnxruntime_int8 (5.00x eager" in describe_choice("m", choice)


def test_without_labels_the_agreement_with_eager_decides():
    rows = [_row("eager", 100.0), _row("openvino_bf16", 30.0, agreement=0.9990), _row("bf16", 40.0, agreement=0.9996)]
    assert choose_best(rows)["backend"] == "bf16"  # 0.10 points of disagreement > 0.05; 0.04 within


def test_eager_is_chosen_when_nothing_faster_is_close_enough_and_needed_as_reference():
    rows = [_row("eager", 100.0, 0.5), _row("openvino_int8", 10.0, 0.3)]
    assert mark_best(rows)["backend"] == "eager" and [r["best"] for r in rows] == [True, False]
    assert choose_best([_row("openvino_int8", 10.0, 0.3)]) is None


def test_best_expands_to_the_available_backends_eager_first(monkeypatch):
    monkeypatch.setattr(select, "candidates", lambda device="cpu", flags=None: ["eager", "channels_last", "onnxruntime"])
    assert expand_backends(["best"]) == ["eager", "channels_last", "onnxruntime"]
    assert expand_backends(["onnxruntime", "best"]) == ["eager", "onnxruntime", "channels_last"]
    assert expand_backends(["channels_last", "eager"]) == ["channels_last", "eager"]
    assert select.candidates.__module__  # the real one lists eager first
    monkeypatch.undo()
    assert select.candidates()[0] == "eager"


def test_compare_best_reports_what_to_deploy(fast_scnn_ckpt, camvid_root, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(select, "candidates", lambda device="cpu", flags=None: ["eager", "channels_last"])
    out = tmp_path / "report"
    code = main(["compare", str(fast_scnn_ckpt), "--data", str(camvid_root), "--output", str(out), "--quiet",
                 "--min-time", "0.05", "--backend", "best", "--in-process"])  # fmt: skip
    assert code == 0
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [r["backend"] for r in rows] == ["eager", "channels_last"]
    chosen = [r for r in rows if r["best"]]
    assert len(chosen) == 1 and chosen[0]["best_choice"]["backend"] == chosen[0]["backend"]
    fastest = min(rows, key=lambda r: r["latency_ms_p50"])
    assert chosen[0]["backend"] == fastest["backend"]  # channels_last equals eager: within any band
    assert f"deploy {rows[0]['model']}: {fastest['backend']}" in capsys.readouterr().out
    report = (out / "report.md").read_text()
    answer = f"`--backend best` chose `{fastest['backend']}` for {rows[0]['model']}"  # named in the opening answer
    assert report.index("**Which model to use**") < report.index(answer) < report.index("## Results")
    section = report.split("## What to deploy (`--backend best`)")[1].split("\n## ")[0]
    deploy_row = next(line for line in section.splitlines() if line.startswith(f"| {rows[0]['model']} |"))
    assert f"| {fastest['backend']} | {chosen[0]['best_choice']['speedup_vs_eager']:.2f}x |" in deploy_row
