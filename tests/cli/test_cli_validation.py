"""Checks before work and messages that scale: class lists with repeated names, unknown splits, VOC lists naming
missing images, compare with a model named twice or no model that loads, and skipped inputs summarised."""

import json
import shutil

import numpy as np
import pytest
from conftest import make_camvid, make_folder_dataset
from dataset_layouts import make_voc
from PIL import Image

from segbench.cli.common import skipped_summary
from segbench.files import write_skipped
from segbench.data.datasets import open_dataset
from segbench.errors import UserError
from segbench.specs import unique_label, unique_specs


def _one_error_line(result, *fragments):
    rc, out, err = result
    lines = err.strip().splitlines()
    assert rc == 2 and lines and lines[-1].startswith("segbench: error: "), (out, err)
    assert "Traceback" not in err
    assert all(f in lines[-1] for f in fragments), lines[-1]
    return lines


def test_repeated_class_names_in_classes_are_refused_before_any_model_loads(cli, tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("road\ncar\nsky\ncar\nroad\n")
    lines = _one_error_line(cli("compare", "fast_scnn", "--classes", names),
                            f"--classes {names}", "named more than once: 'car', 'road'")  # fmt: skip
    assert len(lines) == 1


def test_repeated_class_names_in_a_dataset_class_file(tmp_path):
    root = make_folder_dataset(tmp_path / "ds")
    (root / "classes.yaml").write_text("names: [a, b, a]\n")
    with pytest.raises(UserError, match=r"classes.yaml: class names must be unique; named more than once: 'a'"):
        open_dataset(root, "val")


def test_an_unknown_split_is_named_with_the_ones_found(cli, tmp_path, fast_scnn_ckpt):
    root = make_camvid(tmp_path / "cv", n_train=1, n_val=1)
    lines = _one_error_line(cli("evaluate", fast_scnn_ckpt, "--data", root, "--split", "vall"),
                            "no split 'vall'", "camvid", "splits found: train, val")  # fmt: skip
    assert len(lines) == 1


def test_a_voc_list_naming_missing_images_is_refused_before_work(tmp_path):
    root = make_voc(tmp_path / "voc")
    voc = root / "VOCdevkit" / "VOC2012"
    ids = (voc / "ImageSets" / "Segmentation" / "val.txt").read_text().split()
    for i in ids[:2]:
        (voc / "JPEGImages" / f"{i}.jpg").unlink()
    with pytest.raises(UserError, match=rf"val.txt: names 2 of its {len(ids)} images that JPEGImages/ lacks "
                                        rf"\({ids[0]}, {ids[1]}\)"):  # fmt: skip
        open_dataset(root, "val")


def test_unique_specs_and_labels(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "last.pt").write_bytes(b"x")
    same = [str(tmp_path / "a" / "last.pt"), str(tmp_path / "a" / ".." / "a" / "last.pt")]
    kept, notes = unique_specs(["fcn", *same, "fcn", "unet"])
    assert kept == ["fcn", same[0], "unet"]
    assert notes == ["fcn: named 2 times, measured once", f"{same[0]}: named 2 times, measured once"]
    assert unique_label("fast_scnn", "b/last.pt", {"fast_scnn"}) == "fast_scnn (b/last.pt)"
    assert unique_label("fast_scnn", "b/last.pt", {"fast_scnn", "fast_scnn (b/last.pt)"}) == "fast_scnn (b/last.pt) #2"
    assert unique_label("fast_scnn", "b/last.pt", set()) == "fast_scnn"


def test_compare_measures_a_repeated_model_once_and_labels_two_same_named_files(cli, tmp_path, camvid_root,
                                                                                fast_scnn_ckpt):  # fmt: skip
    for run in ("run_a", "run_b"):
        (tmp_path / run).mkdir()
        shutil.copy(fast_scnn_ckpt, tmp_path / run / "last.safetensors")
    a, b = tmp_path / "run_a" / "last.safetensors", tmp_path / "run_b" / "last.safetensors"
    out_dir = tmp_path / "report"
    rc, out, err = cli("compare", a, a, b, "--data", camvid_root, "--max-images", 1, "--in-process", "--min-time",
                       0.01, "--bootstrap", 0, "--no-boundary", "--no-ece", "--output", out_dir, "--quiet")  # fmt: skip
    assert rc == 0, err
    assert f"note: {a}: named 2 times, measured once" in err.splitlines()
    rows = json.loads((out_dir / "results.json").read_text())["rows"]
    labels = [r["model"] for r in rows]
    assert len(rows) == 2 and len(set(labels)) == 2 and labels[1].endswith("(run_b/last.safetensors)"), labels


def test_compare_where_no_model_loads_exits_2(cli, tmp_path, camvid_root):
    lines = _one_error_line(cli("compare", "no_such_net", "also_no_net", "--data", camvid_root, "--max-images", 1,
                                "--in-process", "--output", tmp_path / "r", "--quiet"),
                            "no model could be evaluated (2 failed; the first, no_such_net")  # fmt: skip
    assert sum(line.startswith("segbench: error:") for line in lines) == 1


def test_skipped_inputs_are_summarised_by_reason_and_listed_in_full(tmp_path):
    skipped = [{"file": f"/d/empty_{i:05d}.png", "reason": f"/d/empty_{i:05d}.png: empty file"} for i in range(10_000)]
    skipped += [{"file": "/d/bad.png", "reason": "cannot decode image"}]
    lines = skipped_summary(skipped)
    assert lines == ["skipped 10001 inputs:",
                     "  10000 x empty file: empty_00000.png, empty_00001.png, empty_00002.png, empty_00003.png, "
                     "empty_00004.png and 9995 more",
                     "  1 x cannot decode image: bad.png"]  # fmt: skip
    written = write_skipped(tmp_path, skipped)
    listed = written.read_text().splitlines()
    assert len(listed) == 10_001 and listed[0] == "/d/empty_00000.png\t/d/empty_00000.png: empty file"
    assert write_skipped(tmp_path, []) is None and write_skipped(None, skipped) is None


def test_predict_on_a_folder_of_empty_files_prints_a_summary(cli, tmp_path, fast_scnn_ckpt):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(30):
        (folder / f"e{i:02d}.png").write_bytes(b"")
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(folder / "ok.png")
    out_dir = tmp_path / "pred"
    rc, out, err = cli("predict", fast_scnn_ckpt, folder, "--output", out_dir, "--quiet")
    assert rc == 0, err
    skip_lines = [line for line in err.splitlines() if "e0" in line or line.startswith("skipped")]
    assert len(skip_lines) <= 3 and "skipped 30 inputs:" in skip_lines, err
    assert "and 25 more" in err and f"the full list: {out_dir / 'skipped.txt'}" in err
    assert len((out_dir / "skipped.txt").read_text().splitlines()) == 30
