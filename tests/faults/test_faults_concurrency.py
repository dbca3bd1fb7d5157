"""Fault injection, processes: two commands writing the same output at once (the second stops with one line
naming the folder and the first's pid; a killed command's lock is taken over), and exports killed by SIGTERM
or SIGKILL (no temporary file survives the next export to that destination). Real processes throughout."""

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from segbench.cli import main
from segbench.files import LOCK_NAME, lock_output, output_locked, release_output_locks

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def _images(folder, n=2):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(folder / f"im{i}.png")
    return folder


def _start(code: str) -> subprocess.Popen:
    """A Python process running ``code``; returns once it printed its first line (``ready``)."""
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)  # fmt: skip
    line = proc.stdout.readline()
    assert line.strip() == "ready", line + proc.stderr.read()
    return proc


def _holder(path, kind="dir") -> subprocess.Popen:
    """Another process holding the output lock of ``path``, as a command writing it does."""
    prepare = "prepare_output_dir" if kind == "dir" else "prepare_output_file"
    return _start(f"""
        import time
        from segbench.files import {prepare}
        {prepare}({str(path)!r}, overwrite=True)
        print("ready", flush=True)
        time.sleep(300)
    """)


def _cli(*argv) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "segbench.cli", *map(str, argv)], capture_output=True, text=True,
                          env=ENV, timeout=300)  # fmt: skip


def _stop(proc, sig=signal.SIGKILL):
    proc.send_signal(sig)
    proc.wait(timeout=60)


def test_second_predict_into_the_same_output_stops_then_takes_over_a_dead_lock(tmp_path):
    data, out = _images(tmp_path / "imgs"), tmp_path / "pred"
    first = _holder(out)
    try:
        second = _cli("predict", "fast_scnn.camvid", data, "--output", out, "--quiet")
        assert second.returncode == 2, second.stderr
        assert "Traceback" not in second.stderr and len(second.stderr.strip().splitlines()) == 1
        assert f"--output {out}: in use by another segbench command (pid {first.pid})" in second.stderr
        assert not list(out.glob("im*")), "the second command wrote files"
    finally:
        _stop(first)  # killed: its lock file stays behind, with no process holding it
    assert (out / LOCK_NAME).read_text().strip() == str(first.pid)
    third = _cli("predict", "fast_scnn.camvid", data, "--output", out, "--quiet")
    assert third.returncode == 0, third.stderr
    assert sorted(p.name for p in out.glob("im0_*")) == ["im0_classes.json", "im0_label.png", "im0_overlay.png"]
    assert not (out / LOCK_NAME).exists()  # released when the command ended


@pytest.mark.parametrize(
    "argv, kind, option",
    [
        (["evaluate", "fast_scnn.camvid", "--data", "{camvid}", "--output", "{out}", "--overwrite"], "dir", "--output"),
        (["compare", "fast_scnn.camvid", "--data", "{camvid}", "--output", "{out}", "--overwrite", "--in-process"],
         "dir", "--output"),
        (["export", "fast_scnn.camvid", "--output", "{out}/m.safetensors"], "file", "--output"),
        (["benchmark", "fast_scnn", "--output", "{out}"], "file", "--output"),
    ],
)
def test_every_writing_command_refuses_a_locked_output(tmp_path, capsys, camvid_root, argv, kind, option):
    out = tmp_path / "out"
    out.mkdir()
    target = out / ("m.safetensors" if argv[0] == "export" else "benchmark.json") if kind == "file" else out
    holder = _holder(target, kind)
    try:
        code = main([a.format(camvid=camvid_root, out=out) for a in argv])
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err, err
        assert f"{option} {target}: in use by another segbench command (pid {holder.pid})" in err
    finally:
        _stop(holder)


def test_train_refuses_a_run_folder_another_process_writes(tmp_path, capsys, shapes_root):
    out = tmp_path / "run"
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"data: {{root: {shapes_root}, crop_size: [32, 32], scale_range: [1.0, 1.0]}}\n"
                      f"model: {{name: fast_scnn}}\niters: 1\nbatch_size: 2\ntensorboard: false\nout_dir: {out}\n")
    holder = _holder(out)
    try:
        code = main(["train", str(recipe), "--quiet"])
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err, err
        assert f"out_dir {out}: in use by another segbench command (pid {holder.pid})" in err
        assert not (out / "last.pt").exists() and not (out / "config.yaml").exists()
    finally:
        _stop(holder)


def test_lock_is_reentrant_in_one_process_and_released(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    lock_output(out)
    with output_locked(out):  # already held: stays held after the block
        pass
    assert (out / LOCK_NAME).read_text().strip() == str(os.getpid())
    release_output_locks()
    assert not (out / LOCK_NAME).exists()
    with output_locked(out):
        assert (out / LOCK_NAME).exists()
    assert not (out / LOCK_NAME).exists()


# --- killed exports ---------------------------------------------------------------------------------------

_SLOW_EXPORT = """
    import sys, time
    import segbench.export.check as check

    def slow_export(model, path, **kwargs):  # writes its temporary files, then hangs as a big export does
        path.write_bytes(b"onnx" * 1000)
        path.with_name(path.name + ".data").write_bytes(b"weights")
        print("ready", flush=True)
        for _ in range(3000):  # short sleeps: a signal that lands just before a sleep call is handled within
            time.sleep(0.1)    # 0.1 s, as it is in a real export, which runs Python code all the time

    check.export_onnx = slow_export
    from segbench.cli import main
    sys.exit(main(["export", "fast_scnn.camvid", "--format", "onnx", "--max-images", "1", "--output", {out!r}]))
"""


def _temporaries(folder, name):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(f".{name}."))


def test_sigterm_during_an_onnx_export_leaves_no_temporary_file(tmp_path):
    pytest.importorskip("onnx")
    out = tmp_path / "m.onnx"
    proc = _start(_SLOW_EXPORT.format(out=str(out)))
    assert len(_temporaries(tmp_path, "m.onnx")) == 3  # the .onnx and its .data, and the lock
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "segbench: terminated" in err and "Traceback" not in err, err
    assert _temporaries(tmp_path, "m.onnx") == [] and not out.exists()


def test_temporaries_of_a_killed_export_are_removed_by_the_next_export(tmp_path):
    pytest.importorskip("onnx")
    out = tmp_path / "m.onnx"
    proc = _start(_SLOW_EXPORT.format(out=str(out)))
    _stop(proc)  # SIGKILL: no clean-up can run
    left = _temporaries(tmp_path, "m.onnx")
    assert len(left) == 3, left
    (tmp_path / ".other.onnx.abcd1234.onnx").write_bytes(b"another destination's: kept")
    nxt = _cli("export", "fast_scnn.camvid", "--format", "onnx", "--output", out, "--data", tmp_path / "missing")
    assert nxt.returncode == 2 and "Traceback" not in nxt.stderr, nxt.stderr
    assert "removed 2 temporary file(s) left by an interrupted command" in nxt.stderr
    assert _temporaries(tmp_path, "m.onnx") == []
    assert (tmp_path / ".other.onnx.abcd1234.onnx").exists()


def test_stale_atomic_write_temporaries_are_removed(tmp_path, capsys):
    stale = tmp_path / ".m.safetensors.k3j_x9q2.tmp"
    stale.write_bytes(b"half a file")
    assert main(["export", "fast_scnn.camvid", "--output", str(tmp_path / "m.safetensors")]) == 0
    assert "removed 1 temporary file(s)" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]
    pred = tmp_path / "pred"
    pred.mkdir()
    (pred / ".im0_label.png.abcdefgh.tmp").write_bytes(b"half")
    data = _images(tmp_path / "imgs", n=1)
    assert main(["predict", "fast_scnn.camvid", str(data), "--output", str(pred), "--quiet"]) == 0  # counts as empty
    assert sorted(p.name for p in pred.iterdir()) == ["im0_classes.json", "im0_label.png", "im0_overlay.png"]
