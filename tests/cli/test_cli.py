"""Every CLI command, run in-process through ``segbench.cli.main`` (plus one real ``segbench --help``):
exit codes, printed results, files written, and one-line errors for bad input."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_camvid
from PIL import Image
from safetensors import safe_open

from segbench.classes import CAMVID
from segbench.data.io import read_image
from segbench.engine.evaluate import predict_mask
from segbench.models import build_model, list_models, load_model


def _strict_json(text: str):
    def no_constants(name):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=no_constants)



def assert_user_error(result, *fragments):
    rc, out, err = result
    assert rc == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("segbench: error: ")
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture
def images_dir(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(folder / "a.png")
    Image.fromarray(rng.integers(0, 256, (36, 30, 3), dtype=np.uint8)).save(folder / "b.jpg")
    return folder


def _recipe(tmp_path, root, out_dir, extra=""):
    path = tmp_path / "recipe.yaml"
    path.write_text(
        f"data:\n  root: {root}\n  crop_size: [48, 64]\n  scale_range: [1.0, 1.0]\n"
        f"iters: 2\nbatch_size: 2\nval_every: 2\nlog_every: 1\nout_dir: {out_dir}\n{extra}"
    )
    return path


# --- entry point ----------------------------------------------------------------------------------


def test_installed_entry_point_help():
    exe = Path(sys.executable).parent / "segbench"
    proc = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    for command in ("models", "train", "curves", "evaluate", "predict", "benchmark", "compare", "export", "hardware"):
        assert command in proc.stdout


# --- models ---------------------------------------------------------------------------------------


def test_models_lists_networks_with_parameter_counts(cli):
    rc, out, _ = cli("models")
    assert rc == 0
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert "1.14" in lines["fast_scnn"].split()  # 1,138,053 parameters at 21 classes
    assert "lraspp_mobilenet_v3_large.coco_voc" in lines["lraspp_mobilenet_v3_large"]
    assert {"fcn_resnet50", "deeplabv3_resnet101", "deeplabv3_mobilenet_v3_large"} <= set(lines)
    assert set(list_models()) <= set(lines)  # every registered network is listed
    assert "parameters at 21 classes" in out


# --- train ----------------------------------------------------------------------------------------


def test_train_refuse_and_resume(cli, tmp_path, camvid_root):
    out_dir = tmp_path / "run"
    recipe = _recipe(tmp_path, camvid_root, out_dir)
    rc, out, err = cli("train", recipe, "--quiet")
    assert rc == 0, err
    assert "best val mIoU" in out and "after 2 iterations" in out and str(out_dir) in out
    assert (out_dir / "last.pt").is_file() and (out_dir / "config.yaml").is_file()
    meta = torch.load(out_dir / "last.pt", weights_only=False)["meta"]
    assert meta["class_names"] == list(CAMVID.names) and meta["config"]["data"]["crop_size"] == [48, 64]

    assert_user_error(cli("train", recipe, "--quiet"), "a run already exists", "--resume")

    rc, out, err = cli("train", recipe, "--quiet", "--resume", "--set", "iters=3", "--set", "val_every=1")
    assert rc == 0, err
    assert "after 3 iterations" in out
    assert torch.load(out_dir / "last.pt", weights_only=False)["iteration"] == 3


def test_train_unknown_recipe_key(cli, tmp_path, camvid_root):
    recipe = _recipe(tmp_path, camvid_root, tmp_path / "r", extra="optim:\n  lrr: 0.1\n")
    assert_user_error(cli("train", recipe), "unknown config key 'optim.lrr'", "optim.lr")


def test_train_set_without_equals(cli, tmp_path, camvid_root):
    recipe = _recipe(tmp_path, camvid_root, tmp_path / "r")
    assert_user_error(cli("train", recipe, "--set", "optim.lr"), "--set 'optim.lr'", "key=value")


def test_train_missing_recipe(cli, tmp_path):
    assert_user_error(cli("train", tmp_path / "absent.yaml"), "no such recipe file")


# --- evaluate -------------------------------------------------------------------------------------


def test_evaluate_prints_and_writes_metrics(cli, tmp_path, camvid_root, fast_scnn_ckpt):
    out_dir = tmp_path / "eval"
    rc, out, err = cli("evaluate", fast_scnn_ckpt, "--data", camvid_root, "--output", out_dir, "--quiet")
    assert rc == 0, err
    metrics = _strict_json((out_dir / "metrics.json").read_text())
    assert metrics["num_images"] == 2 and metrics["split"] == "val" and metrics["skipped"] == []
    assert metrics["model"] == "fast_scnn(fast_scnn_camvid.safetensors)"
    assert set(metrics["iou"]) == set(CAMVID.names)
    miou_line = next(line for line in out.splitlines() if line.startswith("mIoU"))
    assert miou_line.split()[-1] == f"{metrics['miou'] * 100:.2f}"
    assert "Sky" in out and "pixel accuracy" in out

    with open(out_dir / "confusion_matrix.csv", newline="") as f:
        table = list(csv.reader(f))
    assert table[0] == ["target\\pred", *CAMVID.names]
    assert [r[0] for r in table[1:]] == list(CAMVID.names)
    counts = np.array([[int(v) for v in r[1:]] for r in table[1:]])
    labels = [np.array(Image.open(p)) for p in sorted((camvid_root / "valannot").iterdir())]
    assert counts.sum() == sum(int((lab != 11).sum()) for lab in labels)  # every non-void pixel, once
    for i, name in enumerate(CAMVID.names):  # row sums: pixels labelled as that class
        assert counts[i].sum() == sum(int((lab == i).sum()) for lab in labels), name
    assert metrics["confusion"] == counts.tolist()


def test_evaluate_json(cli, camvid_root, fast_scnn_ckpt):
    rc, out, err = cli("evaluate", fast_scnn_ckpt, "--data", camvid_root, "--json", "--quiet", "--max-images", "1")
    assert rc == 0, err
    data = _strict_json(out)
    assert data["num_images"] == 1
    assert 0.0 <= data["miou"] <= 1.0 and 0.0 <= data["pixel_accuracy"] <= 1.0


def test_evaluate_threads(cli, camvid_root, fast_scnn_ckpt, monkeypatch):
    import torch

    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    rc, out, err = cli("evaluate", fast_scnn_ckpt, "--data", camvid_root, "--json", "--quiet", "--max-images", "1",
                       "--threads", "1")  # fmt: skip
    assert rc == 0, err
    assert calls == [1]
    assert _strict_json(out)["threads"] == torch.get_num_threads()
    assert_user_error(cli("evaluate", fast_scnn_ckpt, "--data", camvid_root, "--threads", "0"), "--threads")


def test_evaluate_refuses_non_empty_output(cli, tmp_path, camvid_root, fast_scnn_ckpt):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("x")
    assert_user_error(
        cli("evaluate", fast_scnn_ckpt, "--data", camvid_root, "--output", tmp_path / "full"), "--overwrite"
    )


def test_evaluate_skips_bad_files_and_lists_them(cli, tmp_path, fast_scnn_ckpt):
    root = make_camvid(tmp_path / "cv", n_train=1, n_val=3)
    (root / "val" / "val_000.png").write_bytes(b"not an image at all")
    label_path = root / "valannot" / "val_001.png"
    label = np.array(Image.open(label_path))
    label[0, 0] = 40
    Image.fromarray(label).save(label_path)
    out_dir = tmp_path / "eval"
    rc, out, err = cli("evaluate", fast_scnn_ckpt, "--data", root, "--output", out_dir, "--quiet")
    assert rc == 0, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert "skipped 2 inputs:" in lines  # then one line per reason, with its count and files
    assert any(line.startswith("  1 x ") and "val_000.png" in line and "cannot decode" in line for line in lines)
    assert any(line.startswith("  1 x ") and "val_001.png" in line and "label values 40" in line for line in lines)
    listed = (out_dir / "skipped.txt").read_text().splitlines()
    assert len(listed) == 2 and listed[0].startswith(str(root / "val" / "val_000.png") + "\t")
    metrics = _strict_json((out_dir / "metrics.json").read_text())
    assert metrics["num_images"] == 1 and len(metrics["skipped"]) == 2
    assert "mIoU" in out


def test_compare_lists_skipped_inputs_by_reason_in_the_report_folder(cli, tmp_path, fast_scnn_ckpt):
    root = make_camvid(tmp_path / "cv", n_train=1, n_val=4)
    for k in range(3):
        (root / "val" / f"val_00{k}.png").write_bytes(b"not an image at all")
    out_dir = tmp_path / "cmp"
    rc, out, err = cli("compare", fast_scnn_ckpt, "--data", root, "--output", out_dir, "--quiet", "--in-process",
                       "--min-time", 0.01)  # fmt: skip
    assert rc == 0, err
    assert "skipped 3 inputs:" in err.splitlines() and f"  the full list: {out_dir / 'skipped.txt'}" in err
    assert len((out_dir / "skipped.txt").read_text().splitlines()) == 3
    section = (out_dir / "report.md").read_text().split("## Skipped inputs")[1].split("\n## ")[0]
    (row,) = [line for line in section.splitlines() if "val_000.png" in line]
    assert "| 3 | val_000.png, val_001.png, val_002.png |" in row and "cannot decode" in row


def test_evaluate_all_images_bad(cli, tmp_path, fast_scnn_ckpt):
    root = make_camvid(tmp_path / "cv", n_train=1, n_val=1)
    (root / "val" / "val_000.png").write_bytes(b"broken")
    rc, _, err = cli("evaluate", fast_scnn_ckpt, "--data", root, "--quiet")
    assert rc == 2 and "no image could be evaluated (1 skipped)" in err and "Traceback" not in err


def test_evaluate_bad_inputs(cli, tmp_path, camvid_root, fast_scnn_ckpt, images_dir):
    assert_user_error(cli("evaluate", fast_scnn_ckpt, "--data", tmp_path / "nowhere"), "no such file or folder")
    assert_user_error(
        cli("evaluate", "fast_scn", "--weights", "none", "--data", camvid_root), "unknown model", "did you mean fast_scnn"
    )
    assert_user_error(cli("evaluate", "fast_scnn", "--data", camvid_root), "--weights none")
    assert_user_error(
        cli("evaluate", "fast_scnn", "--weights", "none", "--data", camvid_root, "--quiet"), "predicts 19 classes"
    )
    assert_user_error(cli("evaluate", fast_scnn_ckpt, "--data", images_dir), "no labels")
    assert_user_error(cli("evaluate", tmp_path / "absent.safetensors", "--data", camvid_root), "no such weights file")
    assert_user_error(cli("evaluate", fast_scnn_ckpt, "--data", camvid_root, "--max-images", "-1"), "--max-images")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_device_cuda_without_cuda(cli, camvid_root, fast_scnn_ckpt, images_dir, tmp_path):
    assert_user_error(
        cli("evaluate", fast_scnn_ckpt, "--data", camvid_root, "--device", "cuda"), "CUDA is not available"
    )
    assert_user_error(
        cli("predict", fast_scnn_ckpt, images_dir, "--output", tmp_path / "p", "--device", "cuda"),
        "CUDA is not available",
    )
    assert_user_error(cli("benchmark", "fast_scnn", "--device", "cuda"), "CUDA is not available")
    assert_user_error(cli("evaluate", fast_scnn_ckpt, "--data", camvid_root, "--device", "tpu"), "expected cpu or cuda")


# --- predict --------------------------------------------------------------------------------------


def test_predict_writes_labels_and_overlays_and_skips_bad_files(cli, tmp_path, images_dir, fast_scnn_ckpt):
    (images_dir / "broken.png").write_bytes(b"\x89PNG but not really")
    out_dir = tmp_path / "pred"
    rc, out, err = cli("predict", fast_scnn_ckpt, images_dir, "--output", out_dir)
    assert rc == 0, err
    assert sorted(p.name for p in out_dir.glob("*.png")) == ["a_label.png", "a_overlay.png", "b_label.png", "b_overlay.png"]
    loaded = load_model(str(fast_scnn_ckpt))
    loaded.model.eval()
    for stem in ("a", "b"):
        image = read_image(next(images_dir.glob(f"{stem}.*")))
        label = Image.open(out_dir / f"{stem}_label.png")
        overlay = Image.open(out_dir / f"{stem}_overlay.png")
        assert label.mode == "P" and overlay.mode == "RGB"
        assert label.size == overlay.size == (image.shape[1], image.shape[0])
        expected = predict_mask(loaded.model, image, loaded.info.preprocessing)
        np.testing.assert_array_equal(np.array(label), expected)
        assert label.getpalette()[:33] == [v for c in CAMVID.palette for v in c]
    assert "skipped" in err and "broken.png" in err and "cannot decode" in err and "Traceback" not in err
    assert "2 images segmented" in out and "1 skipped" in out
    assert "broken.png" in (out_dir / "skipped.txt").read_text()

    before = (out_dir / "a_label.png").stat().st_mtime_ns
    assert_user_error(cli("predict", fast_scnn_ckpt, images_dir, "--output", out_dir), "exists", "--overwrite")
    assert (out_dir / "a_label.png").stat().st_mtime_ns == before
    rc, _, err = cli("predict", fast_scnn_ckpt, images_dir / "a.png", "--output", out_dir, "--overwrite", "--quiet")
    assert rc == 0, err


def test_predict_no_images(cli, tmp_path, fast_scnn_ckpt):
    (tmp_path / "empty").mkdir()
    assert_user_error(cli("predict", fast_scnn_ckpt, tmp_path / "empty", "--output", tmp_path / "o"), "no images found")
    assert_user_error(cli("predict", fast_scnn_ckpt, tmp_path / "absent", "--output", tmp_path / "o"), "no such file")


# --- benchmark ------------------------------------------------------------------------------------


def test_benchmark_writes_json(cli, tmp_path):
    out_dir = tmp_path / "bench"
    args = ("benchmark", "fast_scnn", "--size", 64, 64, "--min-time", 0.05, "--budget", 1, "--no-isolate", "--output", out_dir)
    rc, out, err = cli(*args)
    assert rc == 0, err
    rows = _strict_json((out_dir / "benchmark.json").read_text())
    assert len(rows) == 1
    row = rows[0]
    assert row["model"] == "fast_scnn" and row["weights"] == "none" and row["error"] is None
    assert row["latency_ms_p50"] > 0 and row["latency_ms_p90"] >= row["latency_ms_p50"]
    assert row["input_size"] == [64, 64] and row["batch"] == 1 and row["backend"] == "eager"
    assert row["params"] == 1_137_795  # 19 classes, the builder's default
    assert row["gflops"] > 0 and row["achieved_gflop_s"] > 0 and isinstance(row["converged"], bool)
    assert row["e2e_ms_p50"] > 0 and row["e2e_images"] >= 8  # end to end on the shipped sample
    assert row["train_batch"] == 2 and row["train_memory_mib"] >= 0 and row["peak_rss_mib"] > 0
    assert row["env"]["cudnn_benchmark"] is False
    bw = row["env"]["hardware"]["memory_bandwidth"]["triad_gb_s"]  # the roofline against the row's own profile
    assert row["roofline_bound_gflop_s"] == pytest.approx(
        min(row["roofline_peak_gflop_s"], row["arithmetic_intensity_flop_per_byte"] * bw))
    assert row["roofline_fraction"] == pytest.approx(row["achieved_gflop_s"] / row["roofline_bound_gflop_s"])
    assert "fast_scnn" in out and "p50 ms" in out and "95% interval of the median" in out
    assert_user_error(cli(*args), "benchmark.json", "--overwrite")


def test_benchmark_sweeps_sizes_batches_and_backends(cli, tmp_path):
    rc, out, err = cli(
        "benchmark", "fast_scnn", "--size", "32x32", "40x48", "--batch", 1, 2, "--backend", "eager", "channels_last",
        "--min-time", 0.01, "--budget", 0.3, "--warmup-time", 0, "--no-isolate", "--no-e2e", "--no-train-step",
        "--output", tmp_path,
    )  # fmt: skip
    assert rc == 0, err
    rows = _strict_json((tmp_path / "benchmark.json").read_text())
    cases = [(r["backend"], r["input_size"], r["batch"]) for r in rows]
    assert cases == [(b, s, n) for b in ("eager", "channels_last") for s in ([32, 32], [40, 48]) for n in (1, 2)]
    assert all(r["error"] is None and r["latency_ms_p50"] > 0 for r in rows)
    assert all("e2e_ms_p50" not in r and "train_memory_mib" not in r for r in rows)
    assert len([line for line in out.splitlines() if line.startswith("fast_scnn")]) == 8


def test_benchmark_failed_model_becomes_a_row(cli):
    rc, out, err = cli("benchmark", "fast_scnn", "nosuchnet", "--size", 32, 32, "--min-time", 0.01, "--budget", 0.3,
                       "--warmup-time", 0, "--no-isolate", "--no-e2e", "--no-train-step")  # fmt: skip
    assert rc == 0, err
    assert any(line.startswith("nosuchnet") and "error: unknown model" in line for line in out.splitlines())
    assert_user_error(cli("benchmark", "nosuchnet"), "unknown model")
    assert_user_error(cli("benchmark", "fast_scnn", "--batch", 0), "argument --batch", "must be at least 1, got 0")
    assert_user_error(cli("benchmark", "fast_scnn", "--batch", 1, -2), "argument --batch", "got -2")
    assert_user_error(cli("benchmark", "fast_scnn", "--size", "32by32"), "--size 32by32", "HxW")
    assert_user_error(cli("benchmark", "fast_scnn", "--backend", "tensorrt"), "--backend", "unknown backend")
    assert_user_error(cli("benchmark", "fast_scnn", "--rel-ci", 0), "argument --rel-ci", "within 0..1 (0 and 1 excluded), got 0.0")


# --- compare --------------------------------------------------------------------------------------


def test_compare_on_labelled_data(cli, tmp_path, camvid_root, fast_scnn_ckpt):
    out_dir = tmp_path / "report"
    rc, out, err = cli(
        "compare", fast_scnn_ckpt, "fast_scnn", "--weights", "none", "--data", camvid_root,
        "--min-time", 0.05, "--max-images", 2, "--output", out_dir, "--quiet",
    )  # fmt: skip
    assert rc == 0, err
    for name in ("report.md", "report.html", "results.json", "results.csv", "grid.png"):
        assert (out_dir / name).is_file(), name
    results = _strict_json((out_dir / "results.json").read_text())
    rows = {r["model"]: r for r in results["rows"]}
    ckpt_row = rows["fast_scnn(fast_scnn_camvid.safetensors)"]
    assert 0.0 <= ckpt_row["miou"] <= 1.0 and ckpt_row["num_images"] == 2
    assert ckpt_row["latency_ms_p50"] > 0
    # timed in a fresh worker process (the default), which reports its own peak memory
    assert ckpt_row["worker_exit"] == 0 and ckpt_row["peak_rss_mib_total"] > 0
    with open(out_dir / "results.csv", newline="") as f:
        csv_row = next(r for r in csv.DictReader(f) if r["model"] == ckpt_row["model"])
    assert float(csv_row["peak_rss_mib_total"]) == pytest.approx(ckpt_row["peak_rss_mib_total"])
    assert float(csv_row["achieved_gflop_s"]) > 0 and float(csv_row["latency_ms_std"]) >= 0
    random_row = rows["fast_scnn"]
    assert random_row["miou"] is None  # 19 classes: accuracy not measured on CamVid
    assert results["settings"]["images"] == 2 and results["settings"]["input_size"] == [48, 64]
    ckpt_line = next(line for line in out.splitlines() if line.startswith("fast_scnn(fast_scnn_camvid"))
    assert ckpt_line.split()[1:3] == ["mIoU", f"{ckpt_row['miou'] * 100:.2f}"]
    with Image.open(out_dir / "grid.png") as grid:
        assert grid.size[0] > 64 and grid.size[1] > 48
    assert "fast_scnn_camvid" in (out_dir / "report.md").read_text()
    # the environment carries the machine's profile (segbench hardware), native or emulated per precision
    assert {"hardware", "hardware fp32", "hardware bf16", "memory bandwidth"} <= set(results["env"])
    assert "hardware bf16" in (out_dir / "report.md").read_text().split("Environment")[-1]

    assert_user_error(
        cli("compare", fast_scnn_ckpt, "--data", camvid_root, "--output", out_dir, "--min-time", 0.01), "--overwrite"
    )


def test_compare_on_unlabelled_images(cli, tmp_path, images_dir, fast_scnn_ckpt):
    out_dir = tmp_path / "report"
    rc, _, err = cli(
        "compare", fast_scnn_ckpt, "--data", images_dir, "--min-time", 0.05, "--output", out_dir, "--quiet", "--in-process"
    )
    assert rc == 0, err
    assert (out_dir / "grid.png").is_file() and (out_dir / "report.html").is_file()
    results = _strict_json((out_dir / "results.json").read_text())
    assert results["settings"]["split"] == "(unlabelled images)"
    assert results["rows"][0]["miou"] is None and results["rows"][0]["latency_ms_p50"] > 0
    assert "worker_exit" not in results["rows"][0]  # --in-process


def test_compare_failed_model_is_a_row(cli, tmp_path, images_dir, fast_scnn_ckpt):
    out_dir = tmp_path / "report"
    rc, out, err = cli(
        "compare", fast_scnn_ckpt, tmp_path / "absent.safetensors", "--data", images_dir,
        "--min-time", 0.02, "--output", out_dir, "--quiet", "--in-process",
    )  # fmt: skip
    assert rc == 0, err
    assert "no such weights file" in out
    rows = _strict_json((out_dir / "results.json").read_text())["rows"]
    assert len(rows) == 2 and "no such weights file" in rows[1]["error"]
    assert_user_error(cli("compare", fast_scnn_ckpt, "--data", tmp_path / "nowhere", "--output", tmp_path / "r2"),
                      "no such file or folder")  # fmt: skip


# --- export ---------------------------------------------------------------------------------------


def test_export_round_trip(cli, tmp_path, fast_scnn_ckpt):
    target = tmp_path / "exported.safetensors"
    rc, out, err = cli("export", fast_scnn_ckpt, "--output", target)
    assert rc == 0, err
    assert "fp16" in out and str(target) in out
    exported = load_model(str(target))
    source = load_model(str(fast_scnn_ckpt))
    assert exported.info.class_names == list(CAMVID.names) and exported.info.arch == "fast_scnn"
    x = torch.randn(1, 3, 48, 64)
    with torch.no_grad():
        torch.testing.assert_close(exported.model.eval()(x), source.model.eval()(x), atol=0, rtol=0)
    assert_user_error(cli("export", fast_scnn_ckpt, "--output", target), "exists", "--overwrite")
    rc, _, err = cli("export", fast_scnn_ckpt, "--output", target, "--overwrite", "--dtype", "fp32")
    assert rc == 0, err
    with safe_open(str(target), framework="pt") as f:
        assert f.get_tensor("classifier.3.weight").dtype == torch.float32


def _keys(path):
    with safe_open(str(path), framework="pt") as f:
        return list(f.keys())


def test_export_drops_fast_scnn_aux_head_unless_kept(cli, tmp_path):
    raw = tmp_path / "aux.pth"
    torch.save(build_model("fast_scnn", num_classes=4, aux_loss=True).state_dict(), raw)
    rc, _, err = cli("export", "fast_scnn", "--weights", raw, "--output", tmp_path / "a.safetensors")
    assert rc == 0, err
    assert not any(k.startswith("aux_head.") for k in _keys(tmp_path / "a.safetensors"))
    rc, _, err = cli("export", "fast_scnn", "--weights", raw, "--output", tmp_path / "b.safetensors", "--keep-aux")
    assert rc == 0, err
    assert any(k.startswith("aux_head.") for k in _keys(tmp_path / "b.safetensors"))
    assert load_model(str(tmp_path / "b.safetensors")).model.aux_head is not None


def test_export_drops_torchvision_aux_classifier(cli, tmp_path):
    raw = tmp_path / "dl.pth"
    torch.save(build_model("deeplabv3_mobilenet_v3_large", num_classes=4, aux_loss=True).state_dict(), raw)
    rc, _, err = cli("export", "deeplabv3_mobilenet_v3_large", "--weights", raw, "--output", tmp_path / "d.safetensors")
    assert rc == 0, err
    assert not any(k.startswith("aux_classifier.") for k in _keys(tmp_path / "d.safetensors"))


def test_export_bad_model(cli, tmp_path):
    assert_user_error(cli("export", "fast_scnn", "--output", tmp_path / "x.safetensors"), "--weights none")
    assert not (tmp_path / "x.safetensors").exists()




def test_predict_same_stem_does_not_lose_outputs(cli, tmp_path, fast_scnn_ckpt):
    folder = tmp_path / "same"
    folder.mkdir()
    Image.new("RGB", (32, 24), (200, 0, 0)).save(folder / "a.png")
    Image.new("RGB", (20, 16), (0, 0, 200)).save(folder / "a.jpg")
    rc, _, err = cli("predict", fast_scnn_ckpt, folder, "--output", tmp_path / "out", "--quiet")
    written = sorted((tmp_path / "out").glob("*_label.png")) if (tmp_path / "out").exists() else []
    assert (rc == 2 and "a" in err) or len(written) == 2
