"""The CLI on every published layout: ``segbench datasets [PATH]``, ``evaluate`` and ``compare`` with the
layout detected or forced, ``predict --dataset``, and one-line errors."""

import json

import pytest
from dataset_layouts import make_ade20k, make_cityscapes, make_voc, save_checkpoint

from segbench.classes import ADE20K, CITYSCAPES, VOC


def _user_error(result, *fragments):
    rc, out, err = result
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("segbench: error: "), (out, err)
    assert all(f in lines[0] for f in fragments), lines[0]


def test_datasets_lists_the_layouts(cli):
    rc, out, _ = cli("datasets")
    assert rc == 0
    for name in ("cityscapes", "ade20k", "voc", "voc_aug", "camvid", "folder", "images"):
        assert f"\n{name} " in f"\n{out}"
    assert "leftImg8bit/" in out and "SegmentationClassAug" in out


def test_datasets_path_one_line_or_why_not(cli, tmp_path):
    rc, out, _ = cli("datasets", make_ade20k(tmp_path / "ade"))
    assert rc == 0 and len(out.strip().splitlines()) == 1 and ": ade20k (" in out
    (tmp_path / "empty").mkdir()
    _user_error(cli("datasets", tmp_path / "empty"), "not a dataset", "JPEGImages/")
    _user_error(cli("datasets", tmp_path / "nowhere"), "no such file or folder")
    _user_error(cli("datasets", tmp_path, "--dataset", "kitti"), "--dataset", "invalid choice: 'kitti'")


LAYOUTS = {
    # layout: (builder, classes, split, forced --dataset or None)
    "cityscapes": (lambda p: make_cityscapes(p, frames={"val": 2}, train_ids=True), CITYSCAPES, "val", None),
    "voc": (make_voc, VOC, "val", None),
    "voc_aug": (lambda p: make_voc(p, aug=True), VOC, "val", "voc_aug"),
    "ade20k": (lambda p: make_ade20k(p, n={"validation": 2}), ADE20K, "validation", None),
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_evaluate_and_compare_on_each_layout(cli, tmp_path, layout):
    build, classes, split, forced = LAYOUTS[layout]
    root = build(tmp_path / "data")
    ckpt = save_checkpoint(tmp_path / "model.safetensors", classes)
    extra = ["--dataset", forced] if forced else []
    rc, out, err = cli("evaluate", ckpt, "--data", root, "--split", split, "--output", tmp_path / "e", "--quiet", *extra)
    assert rc == 0, err
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert metrics["dataset"] == layout and metrics["num_images"] >= 2 and metrics["miou"] is not None
    assert metrics["num_pixels"] > 0 and len(metrics["iou"]) == classes.num_classes
    rc, out, err = cli("compare", ckpt, "--data", root, "--split", split, "--output", tmp_path / "c", "--in-process",
                       "--min-time", "0.01", "--grid", "1", "--quiet", *extra)  # fmt: skip
    assert rc == 0, err
    row = json.loads((tmp_path / "c" / "results.json").read_text())["rows"][0]
    assert row["miou"] == pytest.approx(metrics["miou"]) and row["num_images"] == metrics["num_images"]


def test_predict_a_dataset_split(cli, tmp_path):
    root = make_voc(tmp_path / "v")
    ckpt = save_checkpoint(tmp_path / "voc.safetensors", VOC)
    rc, out, err = cli("predict", ckpt, root, "--dataset", "voc", "--split", "val", "--output", tmp_path / "p", "--quiet")
    assert rc == 0, err
    assert sorted(p.name for p in (tmp_path / "p").glob("*_label.png")) == [
        "2007_000033_label.png", "2007_000042_label.png", "2007_000061_label.png"]  # fmt: skip
    _user_error(cli("predict", ckpt, root, root, "--dataset", "voc"), "expected one dataset folder")
    _user_error(cli("evaluate", ckpt, "--data", root, "--dataset", "cityscapes"), "no split 'val'", "leftImg8bit/val")
