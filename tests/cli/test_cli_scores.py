"""End to end: evaluate and compare with intervals, boundary IoU, trimap, ECE and corruptions on tiny data."""

import csv
import importlib.util
import json

import numpy as np
import pytest
from PIL import Image


def test_evaluate_writes_intervals_scores_and_per_image_matrices(cli, tmp_path, camvid_root, fast_scnn_ckpt):
    out_dir = tmp_path / "ev"
    rc, out, err = cli("evaluate", fast_scnn_ckpt, "--data", camvid_root, "--output", out_dir, "--quiet",
                       "--boundary", "--trimap", "--trimap-width", 8, "--ece", "--bootstrap", 200)  # fmt: skip
    assert rc == 0, err
    m = json.loads((out_dir / "metrics.json").read_text())
    lo, hi = m["miou_interval"]
    assert lo <= m["miou"] <= hi and len(m["iou_interval"]) == 11
    assert m["bootstrap"] == {"num_images": 2, "num_resamples": 200, "seed": 0, "confidence": 0.95}
    assert 0 <= m["per_image_miou_mean"] <= 1 and "per_image_miou_mean" in m["definitions"]
    assert 0 <= m["boundary"]["boundary_miou"] <= 1 and len(m["trimap"]["miou"]) == 8
    b_lo, b_hi = m["boundary"]["boundary_miou_interval"]
    assert b_lo <= m["boundary"]["boundary_miou"] <= b_hi
    assert 0 <= m["calibration"]["ece"] <= 1
    with np.load(out_dir / "confusions.npz") as z:
        assert z["plain"].shape == (2, 11, 11) and len(z["image_names"]) == 2
        assert np.array_equal(z["plain"].sum(0), np.asarray(m["confusion"]))
    assert "mIoU" in out and "95% bootstrap intervals over 2 images" in out and "ECE" in out
    assert "per-image mIoU: mean" in out and "boundary mIoU" in out and "trimap mIoU" in out
    for png in ("trimap.png", "reliability.png"):
        with Image.open(out_dir / png) as im:
            assert im.size[0] > 300 and im.size[1] > 300, png
        assert png in out


def test_evaluate_without_flags_has_intervals_only(cli, tmp_path, camvid_root, fast_scnn_ckpt):
    rc, out, err = cli("evaluate", fast_scnn_ckpt, "--data", camvid_root, "--json", "--quiet")
    assert rc == 0, err
    m = json.loads(out)
    assert "miou_interval" in m and not {"boundary", "trimap", "calibration"} & set(m)
    rc, out, err = cli("evaluate", fast_scnn_ckpt, "--data", camvid_root, "--json", "--quiet", "--bootstrap", 0)
    assert "miou_interval" not in json.loads(out)


def test_compare_holds_intervals_comparisons_and_statements(cli, tmp_path, camvid_root, fast_scnn_ckpt):
    out_dir = tmp_path / "cmp"
    rc, out, err = cli("compare", fast_scnn_ckpt, "fast_scnn.camvid", "--data", camvid_root, "--output", out_dir,
                       "--min-time", 0.01, "--in-process", "--quiet", "--bootstrap", 200)  # fmt: skip
    assert rc == 0, err
    results = json.loads((out_dir / "results.json").read_text())
    assert results["scores"] == ["boundary", "ece"]  # on by default, trimap left off
    for row in results["rows"]:
        assert 0 <= row["boundary_miou"] <= 1 and 0 <= row["ece"] <= 1
        lo, hi = row["miou_interval"]
        assert lo <= row["miou"] <= hi
        assert len(row["pixel_accuracy_interval"]) == 2 and len(row["iou_interval"]) == 11
        assert row["per_image_miou_mean"] is not None and row["calibration"]["ece"] is not None
    (pair,) = results["comparisons"]
    assert set(pair) == {"a", "b", "difference", "interval", "significant", "statement"}
    assert pair["interval"][0] <= pair["difference"] <= pair["interval"][1]
    report = (out_dir / "report.md").read_text()
    assert "Uncertainty and rankings" in report and "mIoU 95% CI" in report
    for statement in results["statements"]:
        assert statement in report
    assert "not distinguishable on 2 images" in report or " > " in report
    assert "run with `--boundary`" not in report and "run with `--corruptions all`" in report  # how to turn it on
    # the report opens on the answer, then the results table, and ends with the settings
    answer, results_at, settings_at = (report.index(s) for s in ("**Which model to use**", "## Results",
                                                                  "## Settings and environment"))
    assert answer < results_at < report.index("## Uncertainty and rankings") < settings_at
    assert "| Boundary IoU (%) | ECE (%) |" in report.split("## Results")[1].split("\n\n")[1]
    assert (out_dir / "reliability.png").is_file() and (out_dir / "confusions.npz").is_file()
    with open(out_dir / "results.csv", newline="") as f:
        rec = list(csv.DictReader(f))
    assert float(rec[0]["miou_lo"]) <= float(rec[0]["miou"]) <= float(rec[0]["miou_hi"])
    assert pair["statement"].split(" ")[0] in out or "not distinguishable" in out


@pytest.mark.skipif(importlib.util.find_spec("imagecorruptions") is None,
                    reason="imagecorruptions not installed (pip install 'segbench[robustness]')")  # fmt: skip
def test_compare_robustness_table(cli, tmp_path, camvid_root, fast_scnn_ckpt):
    out_dir = tmp_path / "rob"
    rc, out, err = cli("compare", fast_scnn_ckpt, "--data", camvid_root, "--output", out_dir, "--min-time", 0.01,
                       "--in-process", "--quiet", "--corruptions", "noise", "--severities", "1,5",
                       "--corruption-images", 1)  # fmt: skip
    assert rc == 0, err
    results = json.loads((out_dir / "results.json").read_text())
    table = results["robustness"]
    assert table["corruptions"] == ["gaussian_noise", "shot_noise", "impulse_noise"]
    assert table["severities"] == [1, 5] and table["num_images"] == 1
    (name,) = table["models"]
    t = table["models"][name]
    assert len(t["miou"]["shot_noise"]) == 2 and 0 <= t["mean_miou"] <= 1
    assert results["rows"][0]["corruption_miou"] == pytest.approx(t["mean_miou"])
    report = (out_dir / "report.md").read_text()
    assert "Robustness to corruptions" in report and "Corrupted mIoU (%)" in report
    lo, hi = t["mean_miou_interval"]  # one image: every resample is that image
    assert lo == pytest.approx(t["mean_miou"]) == pytest.approx(hi)
    assert "95% bootstrap intervals over the 1 images" in report
    assert (out_dir / "corruptions.png").is_file()
    assert not (out_dir / "corruptions.partial.npz").exists()  # the sweep's checkpoint is gone once it ends


@pytest.mark.skipif(importlib.util.find_spec("imagecorruptions") is None,
                    reason="imagecorruptions not installed (pip install 'segbench[robustness]')")  # fmt: skip
def test_two_files_of_one_network_get_a_corruption_table_each(cli, tmp_path, camvid_root, fast_scnn_ckpt):
    """Both files have one name: the sweep keys by the row's label, not the loaded name (before, the second
    runner replaced the first and the first row got the second's table)."""
    import torch

    from segbench.engine.checkpoint import save_safetensors
    from segbench.models import build_model
    from tests.conftest import camvid_meta

    constant = build_model("fast_scnn", num_classes=11).eval()
    with torch.no_grad():  # predicts class 3 whatever the image: corruptions cannot change its mIoU
        constant.classifier[3].weight.zero_()
        constant.classifier[3].bias.copy_(torch.nn.functional.one_hot(torch.tensor(3), 11).float())
    second = tmp_path / "run_b" / "fast_scnn_camvid.safetensors"
    second.parent.mkdir()
    save_safetensors(constant, camvid_meta(), second)
    out_dir = tmp_path / "rob"
    rc, out, err = cli("compare", fast_scnn_ckpt, second, "--data", camvid_root, "--output", out_dir, "--min-time",
                       0.01, "--in-process", "--quiet", "--corruptions", "noise", "--severities", "5",
                       "--corruption-images", 2)  # fmt: skip
    assert rc == 0, err
    results = json.loads((out_dir / "results.json").read_text())
    first, other = results["rows"]
    assert other["model"] == f"{first['model']} (run_b/fast_scnn_camvid.safetensors)"  # one loaded name
    tables = results["robustness"]["models"]
    assert set(tables) == {first["model"], other["model"]}
    for row in (first, other):
        assert row["corruption_miou"] == pytest.approx(tables[row["model"]]["mean_miou"])
    assert other["corruption_miou"] == pytest.approx(other["miou"])  # constant: the same under every corruption
    assert tables[first["model"]]["clean_miou"] != pytest.approx(tables[other["model"]]["clean_miou"])


@pytest.mark.skipif(importlib.util.find_spec("imagecorruptions") is None,
                    reason="imagecorruptions not installed (pip install 'segbench[robustness]')")  # fmt: skip
@pytest.mark.skipif(importlib.util.find_spec("imagecorruptions") is None,
                    reason="imagecorruptions not installed (pip install 'segbench[robustness]')")  # fmt: skip
def test_evaluate_robustness_table(cli, tmp_path, camvid_root, fast_scnn_ckpt):
    out_dir = tmp_path / "ev"
    rc, out, err = cli("evaluate", fast_scnn_ckpt, "--data", camvid_root, "--output", out_dir, "--quiet",
                       "--corruptions", "contrast", "fog", "--severities", "1,5", "--bootstrap", 100)  # fmt: skip
    assert rc == 0, err
    m = json.loads((out_dir / "metrics.json").read_text())
    (t,) = m["robustness"]["models"].values()
    assert m["robustness"]["num_images"] == 2 and len(t["miou"]["fog"]) == 2
    assert t["clean_miou"] == pytest.approx(m["miou"])  # the same images, the same whole-image inference
    lo, hi = t["mean_miou_interval"]
    assert lo <= t["mean_miou"] <= hi
    assert "corruptions on 2 images, severities 1,5" in out and f"{t['mean']['fog'] * 100:.2f}" in out
    assert (out_dir / "corruptions.png").is_file() and "corruptions.png" in out
    assert not (out_dir / "corruptions.partial.npz").exists()
    rc, _, err = cli("evaluate", fast_scnn_ckpt, "--data", camvid_root, "--resume")  # resume what, from where?
    assert rc == 2 and "--resume: give the --output of the stopped run" in err
    rc, _, err = cli("evaluate", fast_scnn_ckpt, "--data", camvid_root, "--resume", "--output", out_dir)
    assert rc == 2 and "holds no stopped evaluation (evaluate.partial.npz)" in err  # it finished: nothing to resume


def test_compare_resume_continues_a_stopped_sweep(cli, tmp_path, camvid_root, fast_scnn_ckpt, monkeypatch):
    import segbench.engine.robustness as robustness

    out_dir = tmp_path / "rob"
    argv = ("compare", fast_scnn_ckpt, "--data", camvid_root, "--output", out_dir, "--min-time", 0.01,
            "--in-process", "--quiet", "--corruptions", "contrast", "--severities", "1,2", "--corruption-images", 1)

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:  # stopped in the first corrupted cell: the clean cell is saved
        m.setattr(robustness, "corrupt_image", stop)
        rc, out, err = cli(*argv)
    assert rc == 130 and "run the same command with --resume" in err, err
    with np.load(out_dir / "corruptions.partial.npz") as z:
        assert int(z["done"]) == 1
    rc, out, err = cli(*argv, "--resume")  # a non-empty --output is allowed with --resume
    assert rc == 0, err
    assert not (out_dir / "corruptions.partial.npz").exists()
    table = json.loads((out_dir / "results.json").read_text())["robustness"]
    assert len(next(iter(table["models"].values()))["miou"]["contrast"]) == 2
    np.savez(out_dir / "corruptions.partial.npz", key=np.array("another sweep"), done=np.array(1))
    rc, out, err = cli(*argv, "--resume")
    assert rc == 2 and "corruptions.partial.npz: written by a sweep of other models" in err, err


def test_compare_no_boundary_no_ece_turn_them_off(cli, tmp_path, camvid_root, fast_scnn_ckpt):
    out_dir = tmp_path / "off"
    rc, out, err = cli("compare", fast_scnn_ckpt, "--data", camvid_root, "--output", out_dir, "--min-time", 0.01,
                       "--in-process", "--quiet", "--bootstrap", 0, "--no-boundary", "--no-ece")  # fmt: skip
    assert rc == 0, err
    results = json.loads((out_dir / "results.json").read_text())
    (row,) = results["rows"]
    assert results["scores"] == [] and row.get("boundary_miou") is None and row.get("ece") is None
    assert "boundary" not in row and "calibration" not in row
    report = (out_dir / "report.md").read_text()
    assert "Boundary IoU (%)" not in report and "ECE (%)" not in report and "run with `--boundary`" in report


def test_bad_score_and_corruption_options(cli, tmp_path, camvid_root, fast_scnn_ckpt):
    for argv, fragment in ((["--bootstrap", -1], "--bootstrap"), (["--corruptions", "rain"], "--corruptions"),
                           (["--severities", "2-3"], "--severities"), (["--resume"], "--resume"),
                           (["--corruptions", "noise", "--severities", "0-7"], "--severities")):  # fmt: skip
        rc, out, err = cli("compare", fast_scnn_ckpt, "--data", camvid_root, "--output", tmp_path / "x", *argv)
        assert rc == 2 and fragment in err and "Traceback" not in err, (argv, err)
