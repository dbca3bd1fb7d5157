"""Fault injection, output side: an --output of the wrong kind, a location that cannot be written, a full
disk while predict writes, an interrupted predict finished with --skip-existing, weights of another
architecture, options out of range. Each ends in one line and exit code 2 (or finishes correctly), before
any work where the destination is at fault, with nothing overwritten and no half-written set of files."""

import errno

import numpy as np
import pytest
from PIL import Image

import segbench.engine.predict as predict_mod
import segbench.files as files_mod
from segbench.cli import main
from segbench.models.weights import zoo_dir


def _images(folder, n=3):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(folder / f"im{i}.png")
    return folder


def _one_line_exit_2(capsys, code, *needles):
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.mark.parametrize(
    "argv",
    [
        ["evaluate", "fast_scnn.camvid", "--data", "{labelled}", "--output", "{file}"],
        ["compare", "fast_scnn.camvid", "--data", "{labelled}", "--output", "{file}", "--in-process"],
        ["benchmark", "fast_scnn", "--output", "{file}"],
        ["predict", "fast_scnn.camvid", "{data}", "--output", "{file}"],
    ],
)
def test_output_that_is_a_file_is_refused_before_any_work(tmp_path, capsys, camvid_root, argv):
    data, target = _images(tmp_path / "imgs"), tmp_path / "taken.txt"
    target.write_text("keep me")
    code = main([a.format(data=data, labelled=camvid_root, file=target) for a in argv])
    _one_line_exit_2(capsys, code, "exists and is not a folder")
    assert target.read_text() == "keep me"


def test_export_output_that_is_a_folder(tmp_path, capsys):
    (tmp_path / "out.safetensors").mkdir()
    code = main(["export", "fast_scnn.camvid", "--output", str(tmp_path / "out.safetensors")])
    _one_line_exit_2(capsys, code, "is a folder; give a file name")


def test_unwritable_destination_is_found_before_any_work(tmp_path, capsys, monkeypatch, camvid_root):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(files_mod.tempfile, "TemporaryFile", read_only)
    data = _images(tmp_path / "imgs")
    for argv in (["evaluate", "fast_scnn.camvid", "--data", str(camvid_root), "--output", str(tmp_path / "ev")],
                 ["predict", "fast_scnn.camvid", str(data), "--output", str(tmp_path / "pr")],
                 ["export", "fast_scnn.camvid", "--output", str(tmp_path / "m.safetensors")]):  # fmt: skip
        code = main(argv)
        _one_line_exit_2(capsys, code, "cannot write there (Read-only file system)")
    assert not (tmp_path / "m.safetensors").exists()


def test_full_disk_during_predict_lists_the_images_and_leaves_no_half_sets(tmp_path, capsys, monkeypatch):
    data = _images(tmp_path / "imgs", n=3)
    real_save = predict_mod.save_png
    calls = {"n": 0}

    def filling_disk(path, img):
        calls["n"] += 1
        if calls["n"] > 3:  # the first image's files fit; then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(path, img)

    monkeypatch.setattr(predict_mod, "save_png", filling_disk)
    out = tmp_path / "pred"
    code = main(["predict", "fast_scnn.camvid", str(data), "--output", str(out), "--quiet"])
    captured = capsys.readouterr()
    assert code == 0 and "Traceback" not in captured.err
    assert "1 images segmented" in captured.out and "2 skipped" in captured.out
    assert "No space left on device" in captured.out + captured.err
    left = sorted(p.name for p in out.iterdir())
    assert [n for n in left if n.startswith("im1") or n.startswith("im2")] == []  # no half-written set
    assert any(n.startswith("im0_label") for n in left)


def test_interrupted_predict_finishes_with_skip_existing(tmp_path, capsys):
    data, out = _images(tmp_path / "imgs", n=3), tmp_path / "pred"
    assert main(["predict", "fast_scnn.camvid", str(data), "--output", str(out), "--quiet"]) == 0
    done_before = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name.startswith(("im0", "im1"))}
    for p in out.glob("im2_*"):  # as if the run had been killed before the last image
        p.unlink()
    capsys.readouterr()
    code = main(["predict", "fast_scnn.camvid", str(data), "--output", str(out), "--quiet"])
    _one_line_exit_2(capsys, code, "--skip-existing to finish an interrupted batch")
    assert main(["predict", "fast_scnn.camvid", str(data), "--output", str(out), "--quiet", "--skip-existing"]) == 0
    assert "1 images segmented" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name.startswith(("im0", "im1"))} == done_before
    assert any(p.name.startswith("im2_label") for p in out.iterdir())


def test_predict_with_weights_of_another_architecture(tmp_path, capsys):
    data = _images(tmp_path / "imgs", n=1)
    other = zoo_dir() / "fast_scnn.camvid.safetensors"
    code = main(["predict", "lraspp_mobilenet_v3_large", str(data), "--weights", str(other),
                 "--output", str(tmp_path / "p")])  # fmt: skip
    _one_line_exit_2(capsys, code, "holds fast_scnn weights, not lraspp_mobilenet_v3_large")


def test_predict_options_and_all_inputs_skipped(tmp_path, capsys):
    data = _images(tmp_path / "imgs", n=1)
    code = main(["predict", "fast_scnn.camvid", str(data), "--alpha", "1.5", "--output", str(tmp_path / "p")])
    _one_line_exit_2(capsys, code, "--alpha 1.5: expected a mask opacity within 0..1")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.png").write_bytes(b"not a png")
    code = main(["predict", "fast_scnn.camvid", str(bad), "--output", str(tmp_path / "q")])
    assert code == 2  # nothing could be segmented: a failure, as evaluate says
    captured = capsys.readouterr()
    assert "broken.png" in captured.out + captured.err and "Traceback" not in captured.err
