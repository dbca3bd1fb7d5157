"""Tests for segbench.report: the folder written by ``segbench compare``."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from PIL import Image

from segbench.report import pareto_front, write_report

CLASSES = ["sky", "road", "car"]
H, W = 24, 32


def _rows() -> list[dict]:
    return [
        {
            "model": "fast_scnn", "weights": "fast_scnn.camvid", "params_m": 1.14, "size_mb": 4.6,
            "size_mb_fp16": 2.3, "gflops": 1.8, "gmacs": 0.9, "latency_ms_p50": 12.0, "latency_ms_p90": 14.0,
            "throughput_img_s": 83.3, "memory_mib": 210.0, "memory_kind": "cuda_max_allocated",
            "pixel_accuracy": 0.9, "mean_accuracy": 0.75, "miou": 0.6123,
            "iou": {"sky": 0.9, "road": 0.8, "car": float("nan")}, "num_images": 4,
        },
        {
            "model": "unet_resnet34", "weights": "ckpt/unet.pt", "params_m": 24.4, "size_mb": 97.8,
            "gflops": 60.0, "gmacs": 30.0, "latency_ms_p50": 40.0, "latency_ms_p90": 44.0,
            "throughput_img_s": 25.0, "memory_mib": 800.0, "memory_kind": "cuda_max_allocated",
            "pixel_accuracy": 0.95, "mean_accuracy": 0.85, "miou": 0.7456,
            "iou": {"sky": 0.95, "road": 0.9, "car": None}, "num_images": 4,
        },
        {"model": "deeplabv3_resnet101", "weights": "x", "error": "CUDA out of memory | tried 2 GiB"},
    ]  # fmt: skip


def _grid(models: list[str], with_target: bool = True) -> list[dict]:
    rng = np.random.default_rng(0)
    out = []
    for k in range(2):
        target = rng.integers(0, len(CLASSES), (H, W)).astype(np.int64)
        target[0] = 255  # ignore
        out.append({
            "name": f"img{k}.png",
            "image": rng.integers(0, 256, (H, W, 3), dtype=np.uint8),
            "target": target if with_target else None,
            "preds": {m: rng.integers(0, len(CLASSES), (H, W)) for m in models},
        })  # fmt: skip
    return out


ENV = {"torch": "2.x", "cpu": "test cpu", "threads": 2, "device": "cpu"}
SETTINGS = {"input_size": [H, W], "batch": 1, "device": "cpu", "data": "/data/x", "split": "val", "num_images": 4}
SKIPPED = [{"file": "broken_image.png", "reason": "cannot decode image"}]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    files = write_report(out, rows=_rows(), class_names=CLASSES, palette=None, grid=_grid(["fast_scnn", "unet_resnet34"]),
                         env=ENV, settings=SETTINGS, skipped=SKIPPED)  # fmt: skip
    return out, files


def test_all_files_written(report):
    out, files = report
    names = {"results.json", "results.csv", "pareto.png", "bars.png", "grid.png", "report.md", "report.html",
             "skipped.txt"}
    assert {p.name for p in files.values()} == names
    for p in files.values():
        assert p.parent == out and p.is_file() and p.stat().st_size > 0
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]  # no temporary files left


def test_json_round_trips(report):
    out, _ = report
    data = json.loads((out / "results.json").read_text())  # strict JSON: NaN would be invalid here
    assert [r["model"] for r in data["rows"]] == ["fast_scnn", "unet_resnet34", "deeplabv3_resnet101"]
    assert data["rows"][0]["iou"]["car"] is None  # NaN -> null
    assert data["rows"][0]["miou"] == pytest.approx(0.6123)
    assert data["rows"][2]["error"].startswith("CUDA out of memory")
    assert data["skipped"] == SKIPPED
    assert data["settings"]["split"] == "val" and data["env"]["threads"] == 2
    assert data["pareto_front"] == ["fast_scnn", "unet_resnet34"]


def test_csv(report):
    out, _ = report
    with open(out / "results.csv", newline="") as f:
        lines = list(csv.reader(f))
    header, body = lines[0], lines[1:]
    assert len(body) == 3
    for col in ("model", "weights", "miou", "latency_ms_p50", "memory_mib", "error", "iou_sky", "iou_road", "iou_car"):
        assert col in header
    rec = [dict(zip(header, line)) for line in body]
    assert float(rec[1]["miou"]) == pytest.approx(0.7456)
    assert rec[0]["iou_car"] == "" and float(rec[0]["iou_road"]) == pytest.approx(0.8)
    assert "out of memory" in rec[2]["error"] and rec[2]["miou"] == ""


def test_markdown(report):
    out, _ = report
    md = (out / "report.md").read_text()
    for text in ("fast_scnn", "unet_resnet34", "deeplabv3_resnet101", "61.2", "74.6", "CUDA out of memory",
                 "broken_image.png", "cannot decode image", "FlopCounterMode", "multiply-add = 2 FLOPs",
                 "Per-class IoU", "cuda_max_allocated", "](pareto.png)", "](bars.png)", "](grid.png)"):
        assert text in md, text
    assert "not measured" not in md.split("## Results")[0]


def test_html_self_contained(report):
    out, _ = report
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3
    assert 'src="http' not in page and "<link" not in page and "<script" not in page
    assert "fast_scnn" in page and "broken_image.png" in page and "61.2" in page
    assert "CUDA out of memory | tried 2 GiB" in page


def test_grid_grows_with_models(tmp_path):
    sizes = {}
    for n in (1, 2):
        models = ["m1", "m2"][:n]
        rows = [{"model": m, "miou": 0.5, "latency_ms_p50": 1.0} for m in models]
        files = write_report(tmp_path / str(n), rows=rows, class_names=CLASSES, palette=[(255, 0, 0), (0, 255, 0), (0, 0, 255)],
                             grid=_grid(models), env={}, settings={})  # fmt: skip
        sizes[n] = Image.open(files["grid_png"]).size
    (w1, h1), (w2, h2) = sizes[1], sizes[2]
    # Columns: image | ground truth | models; each added model adds one tile column of equal width.
    col = w2 - w1
    assert col > 0 and h1 == h2
    assert w1 >= 3 * col - 20  # 3 columns for 1 model (gaps and margins aside)
    assert col <= 320 + 16  # tiles at most ~320 px wide


def test_unlabelled(tmp_path):
    rows = [{"model": "a", "latency_ms_p50": 5.0, "size_mb": 3.0, "memory_mib": 10.0},
            {"model": "b", "latency_ms_p50": 7.0, "pixel_accuracy": None, "miou": None, "iou": None}]  # fmt: skip
    files = write_report(tmp_path, rows=rows, class_names=None, palette=None, grid=_grid(["a", "b"], with_target=False),
                         env=ENV, settings=SETTINGS)  # fmt: skip
    assert "pareto_png" not in files and not (tmp_path / "pareto.png").exists()
    md = (tmp_path / "report.md").read_text()
    assert "no labels: accuracy not measured" in md.lower()
    assert "mIoU (%)" not in md and "Pixel acc" not in md
    assert "| Class |" not in md
    assert "None." in md  # no skipped inputs
    page = (tmp_path / "report.html").read_text()
    assert "accuracy not measured" in page and page.count("data:image/png;base64,") == 2
    # grid without ground truth: image + 2 models
    w, _ = Image.open(files["grid_png"]).size
    labelled = write_report(tmp_path / "l", rows=rows, class_names=CLASSES, palette=None, grid=_grid(["a", "b"]), env={}, settings={})
    assert Image.open(labelled["grid_png"]).size[0] > w


def test_stale_figure_removed(tmp_path):
    write_report(tmp_path, rows=_rows(), class_names=CLASSES, palette=None, grid=None, env={}, settings={})
    assert (tmp_path / "pareto.png").exists() and not (tmp_path / "grid.png").exists()
    write_report(tmp_path, rows=[{"model": "a", "latency_ms_p50": 1.0}], class_names=None, palette=None, grid=None,
                 env={}, settings={})  # fmt: skip
    assert not (tmp_path / "pareto.png").exists()


def test_same_model_twice_and_no_rows(tmp_path):
    rows = [{"model": "fast_scnn", "weights": "a.pt", "miou": 0.5, "latency_ms_p50": 3.0},
            {"model": "fast_scnn", "weights": "b.pt", "miou": 0.6, "latency_ms_p50": 4.0}]  # fmt: skip
    write_report(tmp_path, rows=rows, class_names=None, palette=None, grid=None, env={}, settings={})
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["pareto_front"] == ["fast_scnn [a.pt]", "fast_scnn [b.pt]"]
    assert [r["model"] for r in data["rows"]] == ["fast_scnn", "fast_scnn"]
    files = write_report(tmp_path / "empty", rows=[], class_names=None, palette=None, grid=None, env={}, settings={})
    assert set(files) == {"results_json", "results_csv", "report_md", "report_html"}
    assert "No models were compared." in files["report_md"].read_text()


def test_skipped_inputs_are_one_row_per_reason_and_listed_in_full_beside_the_report(tmp_path):
    skipped = [{"file": f"/photos/empty_{i:05d}.png", "reason": f"/photos/empty_{i:05d}.png: empty file"}
               for i in range(10_000)]  # fmt: skip
    skipped += [{"file": "/photos/a.jpg", "reason": "cannot decode image '/photos/a.jpg'"},
                {"file": "/photos/b.jpg", "reason": "cannot decode image '/photos/b.jpg'"}]  # fmt: skip
    files = write_report(tmp_path, rows=_rows()[:1], class_names=CLASSES, palette=None, grid=None, env=ENV,
                         settings=SETTINGS, skipped=skipped)  # fmt: skip
    md = (tmp_path / "report.md").read_text()
    section = md.split("## Skipped inputs")[1].split("\n## ")[0]
    assert "10002 input file(s) could not be used" in section and "`skipped.txt`" in section
    rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert rows == ["| empty file | 10000 | empty_00000.png, empty_00001.png, empty_00002.png, empty_00003.png, "
                    "empty_00004.png and 9995 more |",
                    "| cannot decode image | 2 | a.jpg, b.jpg |"]  # fmt: skip
    assert "empty_00005.png" not in md and "empty_09999.png" not in (tmp_path / "report.html").read_text()
    listed = files["skipped_txt"].read_text().splitlines()
    assert files["skipped_txt"] == tmp_path / "skipped.txt" and len(listed) == 10_002
    assert listed[-1] == "/photos/b.jpg\tcannot decode image '/photos/b.jpg'"
    assert len(json.loads((tmp_path / "results.json").read_text())["skipped"]) == 10_002  # machine-readable: all


def test_pareto_front():
    pts = [
        (10.0, 60.0),  # 0 front (fastest)
        (20.0, 70.0),  # 1 front
        (25.0, 65.0),  # 2 dominated by 1
        (40.0, 75.0),  # 3 front
        (40.0, 72.0),  # 4 dominated by 3 (same latency, lower mIoU)
        (50.0, 75.0),  # 5 dominated by 3 (same mIoU, slower)
        (5.0, float("nan")),  # 6 missing mIoU: never on the front
        (12.0, 55.0),  # 7 dominated by 0
    ]
    assert pareto_front(pts) == [0, 1, 3]
    assert pareto_front([]) == []
    assert pareto_front([(1.0, 1.0), (1.0, 1.0)]) == [0, 1]  # identical points do not dominate each other
    assert pareto_front([(3.0, 1.0), (1.0, 0.5)]) == [1, 0]  # sorted by latency


def test_report_has_no_tta_section_without_variants(tmp_path):
    rows = [{"model": "m", "miou": 0.5, "variants": [{"name": "plain", "miou": 0.5, "ms_per_image": 3.0}]}]
    files = write_report(tmp_path / "r", rows=rows, class_names=None, palette=None, grid=None, env={}, settings={})
    assert "Test-time augmentation" not in files["report_md"].read_text()
    rows[0]["variants"].append({"name": "crf", "miou": 0.55, "ms_per_image": 10.0, "extra_ms_per_image": 7.0})
    files = write_report(tmp_path / "r2", rows=rows, class_names=None, palette=None, grid=None, env={}, settings={})
    section = files["report_md"].read_text().split("## Test-time augmentation and CRF")[1].split("\n## ")[0]
    assert "| m | crf | 55.0 | +5.0 |" in section and "+7.0" in section


@pytest.mark.parametrize("num_corruptions, num_models", [(1, 1), (15, 5)])
def test_corruption_heat_map_fits_its_titles(num_corruptions, num_models):
    import warnings

    from segbench.report.figures import corruption_png

    corr = [f"c{i}" for i in range(num_corruptions)]
    table = {"corruptions": corr, "severities": [1, 5],
             "models": {f"m{j}": {"miou": {c: [0.5, 0.2] for c in corr}, "clean_miou": 0.6} for j in range(num_models)}}  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns when tight_layout cannot fit the titles
        png = corruption_png(table)
    w, h = Image.open(io.BytesIO(png)).size
    assert w > 0 and h >= 200  # two title lines, the axis and the cells of one row


def test_robustness_section_lists_the_paired_comparisons():
    from segbench.report.analysis import _robustness
    from segbench.report.render import Table

    fig = {"miou": {"fog": [0.5]}, "mean": {"fog": 0.5}, "relative": {"fog": 0.8}, "clean_miou": 0.625,
           "mean_miou": 0.5, "relative_miou": 0.8, "mean_miou_interval": [0.45, 0.55]}  # fmt: skip
    pair = {"a": "m1", "b": "m2", "significant": True, "relative_significant": False,
            "mean_miou_difference": {"estimate": 0.051, "low": 0.04, "high": 0.062},
            "relative_difference": {"estimate": 0.01, "low": -0.02, "high": 0.03}}  # fmt: skip
    table = {"corruptions": ["fog"], "severities": [1], "num_images": 3, "seed": 0, "bootstrap": 100,
             "models": {"m1": fig, "m2": fig}, "comparisons": [pair]}  # fmt: skip
    tables = [b[1] for b in _robustness({"robustness": table}, {}) if b[0] == "table" and isinstance(b[1], Table)]
    assert tables[0].rows[-2][1] == "50.0 [45.0, 55.0] (80.0)"  # the mean row with its interval
    assert tables[1].rows == [["m1 vs m2", "**+5.1 [4.0, 6.2]**", "+1.0 [-2.0, 3.0]"]]


def _choice(backend: str, latency_ms: float) -> dict:
    return {"backend": backend, "speedup_vs_eager": 2.0, "latency_ms_p50": latency_ms, "loss_points": 0.1,
            "basis": "mIoU", "band_points": 1.0, "rejected": {}}  # fmt: skip


def test_report_opens_on_the_answer_and_names_the_best_backend(tmp_path):
    """The answer names the most accurate, fastest, smallest and trade-off rows among the backends ``best`` chose
    (a faster but unchosen backend does not answer), and which pairs the paired interval cannot tell apart;
    report.md then has the results table, and the settings last."""
    common = {"pixel_accuracy": 0.9, "mean_accuracy": 0.8, "num_images": 8, "gflops": 2.0, "memory_mib": 100.0}
    rows = [
        {**common, "model": "big", "backend": "eager", "best": False, "miou": 0.70, "miou_interval": [0.66, 0.74],
         "latency_ms_p50": 40.0, "size_mb": 90.0},
        {**common, "model": "big", "backend": "onnxruntime", "best": True, "best_choice": _choice("onnxruntime", 20.0),
         "miou": 0.70, "miou_interval": [0.66, 0.74], "latency_ms_p50": 20.0, "latency_ms_ci_low": 19.0,
         "latency_ms_ci_high": 21.0, "size_mb": 90.0, "boundary_miou": 0.41, "ece": 0.06},
        {**common, "model": "mid", "backend": "eager", "best": True, "best_choice": _choice("eager", 10.0),
         "miou": 0.68, "miou_interval": [0.64, 0.72], "latency_ms_p50": 10.0, "size_mb": 20.0},
        {**common, "model": "mid", "backend": "onnxruntime_int8", "best": False, "miou": 0.50,
         "miou_interval": [0.45, 0.55], "latency_ms_p50": 2.0, "size_mb": 5.0},
        {**common, "model": "tiny", "backend": "eager", "best": True, "best_choice": _choice("eager", 5.0),
         "miou": 0.40, "miou_interval": [0.35, 0.45], "latency_ms_p50": 5.0, "size_mb": 3.0},
    ]  # fmt: skip
    comparisons = [
        {"a": "big (onnxruntime)", "b": "mid (eager)", "difference": 0.02, "interval": [-0.01, 0.05], "significant": False},
        {"a": "big (onnxruntime)", "b": "tiny (eager)", "difference": 0.30, "interval": [0.25, 0.35], "significant": True},
        {"a": "mid (eager)", "b": "tiny (eager)", "difference": 0.28, "interval": [0.22, 0.33], "significant": True},
    ]  # fmt: skip
    write_report(tmp_path, rows=rows, class_names=CLASSES, palette=None, grid=None, env=ENV,
                 settings={**SETTINGS, "images": 8}, analysis={"comparisons": comparisons})  # fmt: skip
    md = (tmp_path / "report.md").read_text()
    answer = md.split("\n\n")[1]
    assert answer.startswith("**Which model to use** on these 8 images")
    assert "most accurate **big (onnxruntime)**, mIoU 70.0% [66.0, 74.0]" in answer
    assert "fastest **tiny (eager)**, 5.00 ms" in answer  # not mid's int8 row: best did not choose it
    assert "smallest **tiny (eager)**, 3.00 MB" in answer
    assert "best trade-off **mid (eager)**, 10.0 ms and mIoU 68.0% [64.0, 72.0]" in answer
    assert "paired 95% interval" in answer and "big (onnxruntime) and mid (eager)" in answer
    assert "tiny (eager) and" not in answer and "and tiny (eager)" not in answer
    assert "`--backend best` chose `onnxruntime` for big, `eager` for mid, `eager` for tiny" in answer
    at = [md.index(s) for s in ("**Which model to use**", "## Results", "## What to deploy", "## Accuracy vs latency",
                                "## Settings and environment", "**Settings**", "**Environment**")]  # fmt: skip
    assert at == sorted(at)
    table = md.split("## Results\n\n")[1].split("\n\n")[0].splitlines()
    assert table[0] == ("| Model | mIoU (%) [95% CI] | Boundary IoU (%) | ECE (%) | Latency p50 (ms) [95% CI] | "
                        "Size (MB) | GFLOPs | Peak memory (MiB) |")
    assert "| big (onnxruntime) ★ best backend | **70.0 [66.0, 74.0]** | 41.0 | 6.0 | 20.0 [19.0, 21.0] |" in table[3]
    page = (tmp_path / "report.html").read_text()
    assert page.index('id="sb-answer"') < page.index('id="sb-results"') < page.index("<details><summary>Settings")


def test_answer_falls_back_to_overlapping_intervals_without_paired_data(tmp_path):
    rows = [{"model": "a", "miou": 0.70, "miou_interval": [0.60, 0.80], "latency_ms_p50": 30.0, "size_mb": 9.0},
            {"model": "b", "miou": 0.65, "miou_interval": [0.55, 0.75], "latency_ms_p50": 10.0, "size_mb": 8.0},
            {"model": "c", "miou": 0.30, "miou_interval": [0.25, 0.35], "latency_ms_p50": 1.0, "size_mb": 1.0}]  # fmt: skip
    write_report(tmp_path, rows=rows, class_names=CLASSES, palette=None, grid=None, env={}, settings={})
    answer = (tmp_path / "report.md").read_text().split("\n\n")[1]
    assert "best trade-off **b**" in answer and "fastest **c**" in answer
    assert "(their 95% mIoU intervals overlap, as no paired comparison was available): a and b." in answer
