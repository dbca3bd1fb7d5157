"""Sliding window, TTA and CRF through evaluate (API), and the evaluate / predict / compare commands."""

import json

import numpy as np
import pytest
from PIL import Image

from segbench.data.datasets import open_dataset
from segbench.data.io import read_image
from segbench.engine import crf as crf_module
from segbench.engine.crf import CRFConfig, crf_available
from segbench.engine.evaluate import evaluate
from segbench.engine.inference import InferenceConfig, predict_probs
from segbench.models import load_model

needs_crf = pytest.mark.skipif(not crf_available(), reason="pydensecrf2 not installed (pip install 'segbench[crf]')")



def assert_user_error(result, *fragments):
    rc, out, err = result
    assert rc == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("segbench: error: ") and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def loaded(fast_scnn_ckpt):
    model = load_model(str(fast_scnn_ckpt))
    model.model.eval()
    return model


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(4)
    Image.fromarray(rng.integers(0, 256, (40, 70, 3), dtype=np.uint8)).save(folder / "a.png")
    Image.fromarray(rng.integers(0, 256, (3, 5, 3), dtype=np.uint8)).save(folder / "tiny.png")
    return folder


# --- evaluate (API) -------------------------------------------------------------------------------


def test_evaluate_default_is_one_plain_step(camvid_root, loaded):
    info = loaded.info
    res = evaluate(
        loaded.model, open_dataset(camvid_root, "val"), info.num_classes, info.preprocessing, progress=False
    )
    assert [v.name for v in res.variants] == ["plain"]
    assert res.metrics is res.variants[0].metrics and res.variants[0].ms_per_image > 0
    assert res.variants_dicts()[0]["extra_ms_per_image"] == 0


@needs_crf
def test_evaluate_measures_plain_tta_and_crf_in_one_pass(camvid_root, loaded):
    info, ds = loaded.info, open_dataset(camvid_root, "val")
    plain = evaluate(loaded.model, ds, info.num_classes, info.preprocessing, progress=False)
    cfg = InferenceConfig(flip=True, scales=(0.75, 1.0))
    res = evaluate(
        loaded.model,
        ds,
        info.num_classes,
        info.preprocessing,
        progress=False,
        inference=cfg,
        crf=CRFConfig(iterations=2),
        keep={"val_000"},
    )
    assert [v.name for v in res.variants] == ["plain", "tta", "tta+crf"]
    assert res.variants[0].metrics.confusion == plain.metrics.confusion  # the baseline is the default path
    assert res.metrics is res.variants[-1].metrics
    # the TTA step's confusion matrix is that of predict_probs with the same config, image by image
    tta_conf = np.zeros((info.num_classes, info.num_classes), np.int64)
    for i in range(len(ds)):
        item = ds[i]
        pred = predict_probs(loaded.model, item["image"], info.preprocessing, cfg).argmax(1)[0].numpy()
        ok = item["mask"] != 255
        np.add.at(tta_conf, (item["mask"][ok], pred[ok]), 1)
    assert res.variants[1].metrics.confusion == tta_conf.tolist()
    ms = [v.ms_per_image for v in res.variants]
    assert all(m > 0 for m in ms) and ms[2] > ms[1]  # the CRF step includes the TTA it refines
    dicts = res.variants_dicts(list(info.class_names))
    assert dicts[1]["extra_ms_per_image"] == pytest.approx(ms[1] - ms[0])
    assert set(dicts[2]["iou"]) == set(info.class_names)
    assert res.predictions["val_000"].shape == (48, 64)


def test_evaluate_with_crf_but_no_binding_fails_before_any_work(camvid_root, loaded, monkeypatch):
    monkeypatch.setattr(crf_module, "_module", lambda: None)
    info = loaded.info
    from segbench.errors import UserError

    with pytest.raises(UserError, match="pydensecrf2"):
        evaluate(
            loaded.model,
            open_dataset(camvid_root, "val"),
            info.num_classes,
            info.preprocessing,
            progress=False,
            crf=CRFConfig(),
        )


# --- evaluate / predict / compare (CLI) -----------------------------------------------------------


@needs_crf
def test_cli_evaluate_reports_each_step(cli, tmp_path, camvid_root, fast_scnn_ckpt):
    out_dir = tmp_path / "eval"
    rc, out, err = cli(
        "evaluate",
        fast_scnn_ckpt,
        "--data",
        camvid_root,
        "--quiet",
        "--output",
        out_dir,
        "--mode",
        "slide",
        "--window",
        32,
        32,
        "--tta-flip",
        "--crf",
        "--crf-iterations",
        2,
    )
    assert rc == 0, err
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert [v["name"] for v in metrics["variants"]] == ["plain", "tta", "tta+crf"]
    assert metrics["inference"]["mode"] == "slide" and metrics["inference"]["window"] == [32, 32]
    assert metrics["crf"]["iterations"] == 2 and metrics["miou"] == metrics["variants"][-1]["miou"]
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.split()}
    for v in metrics["variants"]:
        assert lines[v["name"]][1] == f"{v['miou'] * 100:.2f}"
    assert "slide (window 32x32, stride 22x22)" in out and "TTA scales 1 + flip" in out


def test_cli_crf_without_binding_is_one_line(cli, camvid_root, fast_scnn_ckpt, photos, tmp_path, monkeypatch):
    monkeypatch.setattr(crf_module, "_module", lambda: None)
    assert_user_error(cli("evaluate", fast_scnn_ckpt, "--data", camvid_root, "--crf"), "pydensecrf2", "segbench[crf]")
    assert_user_error(cli("predict", fast_scnn_ckpt, photos, "--output", tmp_path / "p", "--crf"), "pydensecrf2")
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--stride", 600, 600], "--stride 600 600: must not exceed the window 512 512"),
        (["--window", 0, 5], "argument --window: must be at least 1, got 0"),
        (["--crf-param", "smooth_sxy=2"], "given without --crf"),
        (["--memory-budget", -3], "--memory-budget"),
    ],
)
def test_cli_bad_inference_options(cli, tmp_path, fast_scnn_ckpt, photos, args, fragment):
    assert_user_error(cli("predict", fast_scnn_ckpt, photos, "--output", tmp_path / "p", *args), fragment)


def test_cli_predict_writes_label_overlay_confidence_and_class_fractions(cli, tmp_path, photos, fast_scnn_ckpt, loaded):
    out_dir = tmp_path / "pred"
    rc, out, err = cli(
        "predict",
        fast_scnn_ckpt,
        photos,
        "--output",
        out_dir,
        "--mode",
        "slide",
        "--window",
        24,
        32,
        "--gaussian",
        "--tta-scales",
        "0.75,1",
        "--confidence",
        "--quiet",
    )
    assert rc == 0, err
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "a_classes.json",
        "a_confidence.png",
        "a_label.png",
        "a_overlay.png",
        "tiny_classes.json",
        "tiny_confidence.png",
        "tiny_label.png",
        "tiny_overlay.png",
    ]
    info = loaded.info
    cfg = InferenceConfig(mode="slide", window=(24, 32), gaussian=True, scales=(0.75, 1.0))
    for stem in ("a", "tiny"):
        image = read_image(photos / f"{stem}.png")
        probs = predict_probs(loaded.model, image, info.preprocessing, cfg)
        conf, expected = (t[0].numpy() for t in probs.max(1))
        label = np.array(Image.open(out_dir / f"{stem}_label.png"))
        np.testing.assert_array_equal(label, expected)
        confidence = np.array(Image.open(out_dir / f"{stem}_confidence.png"))
        assert confidence.dtype == np.uint8 and confidence.shape == image.shape[:2]
        np.testing.assert_array_equal(confidence, np.clip(conf * 255 + 0.5, 0, 255).astype(np.uint8))
        summary = json.loads((out_dir / f"{stem}_classes.json").read_text())
        assert (summary["height"], summary["width"]) == image.shape[:2]
        assert summary["inference"]["window"] == [24, 32] and summary["crf"] is None
        fractions = summary["class_fractions"]
        assert list(fractions) == list(info.class_names)
        assert sum(fractions.values()) == pytest.approx(1.0)
        for c, name in enumerate(info.class_names):
            assert fractions[name] == pytest.approx((label == c).mean())
    assert "2 images segmented" in out and "slide (window 24x32" in out

    # nothing is overwritten without --overwrite, whichever output exists
    (out_dir / "a_label.png").unlink()
    before = (out_dir / "a_classes.json").read_text()
    assert_user_error(cli("predict", fast_scnn_ckpt, photos, "--output", out_dir), "exists", "--overwrite")
    assert (out_dir / "a_classes.json").read_text() == before and not (out_dir / "a_label.png").exists()
    rc, _, err = cli("predict", fast_scnn_ckpt, photos, "--output", out_dir, "--overwrite", "--quiet")
    assert rc == 0, err and (out_dir / "a_label.png").exists()


@needs_crf
def test_cli_predict_crf(cli, tmp_path, photos, fast_scnn_ckpt, loaded):
    out_dir = tmp_path / "crf"
    rc, out, err = cli(
        "predict",
        fast_scnn_ckpt,
        photos / "a.png",
        "--output",
        out_dir,
        "--crf",
        "--quiet",
        "--crf-param",
        "appearance_sxy=20",
    )
    assert rc == 0, err
    info = loaded.info
    image = read_image(photos / "a.png")
    probs = predict_probs(loaded.model, image, info.preprocessing)
    q = crf_module.dense_crf(image, probs, CRFConfig(appearance_sxy=20))
    np.testing.assert_array_equal(np.array(Image.open(out_dir / "a_label.png")), q.argmax(0))
    assert json.loads((out_dir / "a_classes.json").read_text())["crf"]["appearance_sxy"] == 20
    assert "dense CRF" in out


def test_cli_compare_with_tta_shows_with_and_without(cli, tmp_path, camvid_root, fast_scnn_ckpt, monkeypatch):
    import segbench.compare

    # speed is not what this test is about: a stub benchmark keeps it fast
    monkeypatch.setattr(segbench.compare, "benchmark_model", lambda *a, **k: {"latency_ms_p50": 1.0, "env": {}})
    out_dir = tmp_path / "report"
    rc, out, err = cli(
        "compare",
        fast_scnn_ckpt,
        "--data",
        camvid_root,
        "--min-time",
        0.05,
        "--output",
        out_dir,
        "--quiet",
        "--tta-flip",
        "--in-process",
    )
    assert rc == 0, err
    results = json.loads((out_dir / "results.json").read_text())
    row = results["rows"][0]
    assert [v["name"] for v in row["variants"]] == ["plain", "tta"]
    assert row["miou"] == row["variants"][1]["miou"]
    assert results["settings"]["inference"] == "whole image; TTA scales 1 + flip"
    report = (out_dir / "report.md").read_text()
    assert "## Test-time augmentation and CRF" in report
    section = report.split("## Test-time augmentation and CRF")[1]
    assert (
        f"{row['variants'][0]['miou'] * 100:.1f}" in section
        and f"{row['variants'][1]['extra_ms_per_image']:+.1f}" in section
    )
    assert "tta: mIoU" in out
