"""The CLI on every published layout: ``segbench datasets [PATH]``, ``evaluate`` and ``compare`` with the
layout detected or forced, ``predict --dataset``, and one-line errors."""

import json

import numpy as np
import pytest
from conftest import make_camvid
from dataset_layouts import make_ade20k, make_cityscapes, make_voc, save_checkpoint
from PIL import Image

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


def test_class_balance_counts_each_split_and_lists_an_unreadable_label_map(cli, tmp_path):
    root = make_camvid(tmp_path / "camvid", n_train=2, n_val=2)
    h, w = np.array(Image.open(root / "trainannot" / "train_000.png")).shape
    sky_and_void = np.zeros((h, w), np.uint8)
    sky_and_void[h // 2 :] = 11  # CamVid's void id: not counted
    Image.fromarray(sky_and_void, mode="L").save(root / "trainannot" / "train_000.png")
    Image.fromarray(np.full((h, w), 3, np.uint8), mode="L").save(root / "trainannot" / "train_001.png")  # Road
    Image.fromarray(np.full((h, w), 10, np.uint8), mode="L").save(root / "valannot" / "val_000.png")  # Bicyclist
    (root / "valannot" / "val_001.png").write_bytes(b"not a png")

    rc, out, err = cli("datasets", root, "--class-balance", "train", "val")
    assert rc == 0, err
    rows = {line.split(" | ")[0].strip("| "): line.strip("| ").split(" | ")[1:] for line in out.splitlines()}
    third = 100 * (h // 2 * w) / (h // 2 * w + h * w)  # Sky's half image against Road's whole one
    assert rows["class"] == ["train pixels %", "train images", "val pixels %", "val images"]
    assert rows["Sky"] == [f"{third:.2f}", "1 of 2", "0.00", "0 of 1"]
    assert rows["Road"] == [f"{100 - third:.2f}", "1 of 2", "0.00", "0 of 1"]
    assert rows["Bicyclist"] == ["0.00", "0 of 2", "100.00", "1 of 1"]
    assert rows["labelled pixels, images"] == [f"{h // 2 * w + h * w:,}", "2", f"{h * w:,}", "1"]
    assert "skipped 1 input" in err and "val_001.png" in err


def test_class_balance_needs_a_labelled_split(cli, tmp_path, camvid_root):
    _user_error(cli("datasets", "--class-balance", "val"), "--class-balance", "dataset folder")
    _user_error(cli("datasets", camvid_root, "--class-balance", "nope"), "no split 'nope'")
    (tmp_path / "pics").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "pics" / "a.png")
    _user_error(cli("datasets", tmp_path / "pics", "--class-balance", "val"), "--class-balance val", "no label maps")
