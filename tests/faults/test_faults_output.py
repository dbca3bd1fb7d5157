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
    _one_line_exit_2(capsys, code, "argument --alpha: must be within 0..1, got 1.5 (mask opacity)")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.png").write_bytes(b"not a png")
    code = main(["predict", "fast_scnn.camvid", str(bad), "--output", str(tmp_path / "q")])
    assert code == 2  # nothing could be segmented: a failure, as evaluate says
    captured = capsys.readouterr()
    assert "broken.png" in captured.out + captured.err and "Traceback" not in captured.err


# --- a full disk or a read-only folder while training writes its checkpoints ---------------------------------


def _recipe(tmp_path, shapes_root, out, iters):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"data: {{root: {shapes_root}, crop_size: [32, 32], scale_range: [1.0, 1.0], "
                      f"val_max_images: 1}}\nmodel: {{name: fast_scnn}}\niters: {iters}\nbatch_size: 2\n"
                      f"val_every: 1\nlog_every: 1\ntensorboard: false\nout_dir: {out}\n")  # fmt: skip
    return str(recipe)


@pytest.mark.parametrize(
    "patched, reason",
    [("fsync", "No space left on device"), ("mkstemp", "Read-only file system")],  # full disk, read-only folder
)
def test_failed_checkpoint_write_keeps_the_previous_one(tmp_path, capsys, monkeypatch, shapes_root, patched, reason):
    import segbench.files as io_mod
    import segbench.engine.checkpoint as ckpt_mod
    from segbench.engine.state import read_state

    out = tmp_path / "run"
    assert main(["train", _recipe(tmp_path, shapes_root, out, 1), "--quiet"]) == 0
    before = {name: (out / name).read_bytes() for name in ("last.pt", "best.pt")}
    capsys.readouterr()
    armed = {"on": False}
    module = io_mod.os if patched == "fsync" else io_mod.tempfile
    real = getattr(module, patched)

    def failing(*args, **kwargs):  # fsync: the data is in the temporary file when the disk fills
        if armed["on"]:
            raise OSError(errno.ENOSPC if patched == "fsync" else errno.EROFS, reason)
        return real(*args, **kwargs)

    real_write = ckpt_mod.write_bytes_atomic

    def checkpoint_write(path, data, what):  # the fault hits the checkpoint writes only
        armed["on"] = True
        try:
            return real_write(path, data, what)
        finally:
            armed["on"] = False

    monkeypatch.setattr(module, patched, failing)
    monkeypatch.setattr(ckpt_mod, "write_bytes_atomic", checkpoint_write)
    code = main(["train", _recipe(tmp_path, shapes_root, out, 2), "--resume", "--quiet"])
    err = _one_line_exit_2(capsys, code, f"cannot write the checkpoint ({reason}); nothing was written there")
    assert len(err.strip().splitlines()) == 1 and ("last.pt" in err or "best.pt" in err)
    monkeypatch.undo()
    for name, data in before.items():
        assert (out / name).read_bytes() == data  # intact, byte for byte
    assert read_state(out / "last.pt", "cpu")["iteration"] == 1
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]  # no temporary file left


# --- options that cannot work well: threads above the cores, TTA scales shrinking the image away ----------


def test_threads_above_the_cores_warn_once(tmp_path, capsys, monkeypatch):
    import segbench.errors as errors_mod

    monkeypatch.setattr(errors_mod, "available_cores", lambda: 2)
    code = main(["benchmark", "fast_scnn", "--threads", "64", "--output", str(tmp_path / "b"), "--size", "0", "0"])
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if "--threads 64 is more than the 2 CPU cores" in line]
    assert len(warnings) == 1, err
    assert code == 2  # the bad --size still stops it: the warning is only a warning
    assert errors_mod.threads_warning(2) is None and errors_mod.threads_warning(None) is None
    assert "threads 3 is more than" in errors_mod.threads_warning(3, "threads")


def test_tta_scale_shrinking_the_image_away_is_refused(tmp_path, capsys):
    data = tmp_path / "imgs"
    data.mkdir()
    Image.fromarray(np.zeros((360, 480, 3), np.uint8)).save(data / "photo.png")
    code = main(["predict", "fast_scnn.camvid", str(data), "--tta-scales", "0.01,1", "--output", str(tmp_path / "p")])
    err = _one_line_exit_2(capsys, code, "--tta-scales 0.01: shrinks a 360 x 480 image to 4 x 5 px",
                           "the smallest usable scale for this input is 0.03")  # fmt: skip
    assert len(err.strip().splitlines()) == 1
    assert main(["predict", "fast_scnn.camvid", str(data), "--tta-scales", "0.03,1", "--output",
                 str(tmp_path / "q"), "--quiet"]) == 0  # fmt: skip


def test_default_whole_mode_slides_when_the_memory_budget_would_be_exceeded(tmp_path, capsys, monkeypatch):
    import segbench.engine.inference as inf

    data = tmp_path / "imgs"
    data.mkdir()
    Image.fromarray(np.zeros((400, 600, 3), np.uint8)).save(data / "photo.png")  # larger than one window
    monkeypatch.setattr(inf, "_probe_peak_mib", lambda *a: 5000.0)  # MiB per window: over the 2048 MiB budget
    slid = []
    real = inf.slide_label_streaming
    monkeypatch.setattr(inf, "slide_label_streaming", lambda *a, **k: slid.append(1) or real(*a, **k))
    assert main(["predict", "fast_scnn.camvid", str(data), "--output", str(tmp_path / "p"), "--quiet"]) == 0
    assert slid == [1]
    assert main(["predict", "fast_scnn.camvid", str(data), "--output", str(tmp_path / "q"), "--quiet",
                 "--memory-budget", "0"]) == 0  # fmt: skip
    assert slid == [1]  # 0 lifts the bound: one whole-image pass


def test_curves_output_of_the_wrong_kind_or_unwritable(tmp_path, capsys, monkeypatch):
    (tmp_path / "fig.png").mkdir()
    code = main(["curves", str(tmp_path), "--output", str(tmp_path / "fig.png"), "--overwrite"])
    _one_line_exit_2(capsys, code, "is a folder; give a file name")

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(files_mod.tempfile, "TemporaryFile", read_only)
    code = main(["curves", str(tmp_path), "--output", str(tmp_path / "c.png")])
    _one_line_exit_2(capsys, code, "cannot write there (Read-only file system)")
