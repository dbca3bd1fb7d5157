"""Fault injection over the classes of issue 28, each on the real code path:

* a stop keeps what finished: SIGTERM and SIGINT sent to a real ``segbench compare`` process after its first
  model finished (exit 143 / 130, results.json and the report marked partial with the finished row), then
  ``--resume`` measures only the other model; a crashed benchmark worker (a real subprocess killed by SIGKILL)
  keeps the other model's row and ``--resume`` measures only the crashed one;
* the report folder is replaced as a whole: a failed swap leaves the old report as it was;
* every writer turns a full disk, a read-only file system, a missing permission (EACCES, EPERM) into one line
  naming the file, leaves no temporary file, and keeps the old file intact.
"""

from __future__ import annotations

import errno
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import segbench.compare as compare_mod
from segbench.bench.isolate import run_isolated
from segbench.cli import main
from segbench.files import WriteError, replace_folder, staging_folder, write_bytes_atomic

MODELS = ["fast_scnn", "lraspp_mobilenet_v3_large"]
FAST = ["--weights", "none", "--max-images", "2", "--grid", "1", "--size", "32", "32", "--no-boundary", "--no-ece",
        "--bootstrap", "0"]  # fmt: skip
FAULTS = [(errno.ENOSPC, "No space left on device"), (errno.EROFS, "Read-only file system"),
          (errno.EACCES, "Permission denied"), (errno.EPERM, "Operation not permitted")]  # fmt: skip


def _results(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


def _wait_for_line(proc: subprocess.Popen, needle: str, timeout_s: float = 240.0) -> list[str]:
    """stderr lines of ``proc`` up to the first holding ``needle`` (read by a thread: no blind sleep)."""
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(ln) for ln in proc.stderr] + [lines.put(None)], daemon=True).start()
    seen, deadline = [], time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        if line is None:
            break
        seen.append(line)
        if needle in line:
            return seen
    proc.kill()
    raise AssertionError(f"no line with {needle!r} in {seen[-20:]}")


# --- a stop keeps what finished ---------------------------------------------------------------------------


def test_sigterm_after_the_first_model_keeps_its_row_and_resume_measures_only_the_rest(tmp_path, capsys,
                                                                                      camvid_root):  # fmt: skip
    out = tmp_path / "report"
    argv = ["compare", *MODELS, "--data", str(camvid_root), "--output", str(out), *FAST, "--in-process",
            "--min-time", "0.5"]  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "segbench.cli", *argv], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    _wait_for_line(proc, f"[1/2] {MODELS[0]}: finished")
    proc.send_signal(signal.SIGTERM)  # the second model is being measured (its latency alone takes 0.5 s)
    assert proc.wait(timeout=120) == 143
    partial = _results(out)
    assert partial["partial"] is True
    assert partial["finished_models"] == [MODELS[0]] and partial["unfinished_models"] == [MODELS[1]]
    assert [r["model"] for r in partial["rows"]] == [MODELS[0]] and partial["rows"][0]["latency_ms_p50"] > 0
    for name in ("report.md", "report.html"):
        assert "Partial report." in (out / name).read_text() and MODELS[1] in (out / name).read_text()
    assert not list(tmp_path.glob(".report.*"))  # no staging folder left beside it

    capsys.readouterr()
    assert main([*argv, "--resume"]) == 0
    err = capsys.readouterr().err
    assert f"[1/1] {MODELS[1]}: finished" in err and f"{MODELS[0]}: finished" not in err  # measured once
    final = _results(out)
    assert not final.get("partial") and [r["model"] for r in final["rows"]] == MODELS
    assert final["rows"][0]["latency_ms_p50"] == partial["rows"][0]["latency_ms_p50"]  # the same measurement
    assert "Partial report." not in (out / "report.md").read_text()
    browser = {p.name for p in (out / "browser").iterdir()}
    assert {"m0", "m1"} <= browser and len(final["images"]) == 2  # the first model's masks carried over


def test_sigint_during_the_second_model_exits_130_with_the_first_row(tmp_path, capsys, monkeypatch, camvid_root):
    out = tmp_path / "report"
    argv = ["compare", *MODELS, "--data", str(camvid_root), "--output", str(out), *FAST, "--in-process",
            "--min-time", "0.01"]  # fmt: skip
    real = compare_mod.benchmark_model
    calls = []

    def interrupted_second(*args, **kwargs):  # a real SIGINT to this process, while the second model is timed
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)  # the handler raises before this ends
        return real(*args, **kwargs)

    monkeypatch.setattr(compare_mod, "benchmark_model", interrupted_second)
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    assert main(argv) == 130
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers  # restored
    err = capsys.readouterr().err
    assert "1 of 2 model(s) finished (interrupted by SIGINT)" in err and "segbench: interrupted" in err
    partial = _results(out)
    assert partial["partial"] is True and [r["model"] for r in partial["rows"]] == [MODELS[0]]
    assert partial["unfinished_models"] == [MODELS[1]] and "Partial report." in (out / "report.html").read_text()


def _worker(row: dict | None) -> list[str]:
    """A benchmark worker command: one that dies by SIGKILL (``row`` None), or one writing ``row``."""
    if row is None:
        return [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"]
    code = f"import json, sys; open(sys.argv[2], 'w').write(json.dumps({row!r}))"
    return [sys.executable, "-c", code]


def test_a_crashed_worker_keeps_the_other_models_row_and_resume_measures_only_it(tmp_path, capsys, monkeypatch,
                                                                                  camvid_root):  # fmt: skip
    out = tmp_path / "report"
    argv = ["compare", *MODELS, "--data", str(camvid_root), "--output", str(out), *FAST, "--min-time", "0.01"]
    rows = {MODELS[0]: None, MODELS[1]: {"latency_ms_p50": 7.0, "size_mb": 1.0}}  # the first model's worker dies
    monkeypatch.setattr(compare_mod, "run_isolated", lambda case: run_isolated(case, command=_worker(rows[case.model])))
    assert main(argv) == 0
    err = capsys.readouterr().err
    first = _results(out)
    assert first["partial"] is True and first["unfinished_models"] == [MODELS[0]]
    assert "worker killed by signal SIGKILL" in first["rows"][0]["error"]
    assert first["rows"][1]["latency_ms_p50"] == 7.0  # the other model's row kept
    assert "--resume" in err and "Partial report." in (out / "report.md").read_text()

    rows.update({MODELS[0]: {"latency_ms_p50": 3.0}, MODELS[1]: {"latency_ms_p50": 99.0}})
    assert main([*argv, "--resume"]) == 0
    err = capsys.readouterr().err
    assert f"[1/1] {MODELS[0]}: finished" in err and f"{MODELS[1]}: finished" not in err
    final = _results(out)
    assert not final.get("partial")
    latency = {r["model"]: r["latency_ms_p50"] for r in final["rows"]}
    assert latency == {MODELS[1]: 7.0, MODELS[0]: 3.0}  # the finished model was not measured again


def test_resume_refuses_a_stopped_run_of_other_settings(tmp_path, capsys, monkeypatch, camvid_root):
    out = tmp_path / "report"
    argv = ["compare", *MODELS, "--data", str(camvid_root), "--output", str(out), *FAST, "--min-time", "0.01"]
    monkeypatch.setattr(compare_mod, "run_isolated", lambda case: run_isolated(case, command=_worker(None)))
    assert main(argv) == 0 and _results(out)["partial"] is True
    capsys.readouterr()
    changed = [a if a != "32" else "40" for a in argv]  # another --size
    assert main([*changed, "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "compare.partial.npz holds a comparison with other input_size" in err[0]


# --- the report folder is replaced as a whole -------------------------------------------------------------


def test_a_failed_report_swap_keeps_the_old_report_intact(tmp_path, capsys, monkeypatch, camvid_root):
    out = tmp_path / "report"
    argv = ["compare", MODELS[0], "--data", str(camvid_root), "--output", str(out), *FAST, "--in-process",
            "--min-time", "0.01", "--overwrite", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    real_replace = os.replace

    def refusing(src, dst):  # the rename of the new folder into place is refused
        if str(src).endswith(".staging"):
            raise OSError(errno.EACCES, "Permission denied")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", refusing)
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{out}: cannot put the new report folder in place (Permission denied)" in err[0]
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before  # every file of the old report, byte for byte, and nothing else
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]  # no staging or aside folder left


def test_replace_folder_swaps_whole_folders_and_keeps_the_lock(tmp_path):
    from segbench.files import LOCK_NAME, lock_output, release_output_locks

    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    lock_output(out)
    try:
        new = staging_folder(out)
        (new / "new.txt").write_text("new")
        replace_folder(new, out)
        assert sorted(p.name for p in out.iterdir()) == sorted(["new.txt", LOCK_NAME])
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
        code = f"from segbench.files import lock_output; lock_output({str(out)!r})"
        other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert other.returncode != 0 and "in use by another segbench command" in other.stderr  # still ours
    finally:
        release_output_locks()


# --- every writer: one line naming the file, nothing half-written, the old file intact ---------------------


def _writers(tmp_path: Path):
    """(name, target file, function writing it) for each writer of segbench output."""
    import torch

    from segbench.data.io import label_image, save_png
    from segbench.engine.checkpoint import save_checkpoint, save_safetensors
    from segbench.models import build_model
    from segbench.report import write_report

    model = build_model("fast_scnn", num_classes=3)
    mask = np.arange(12, dtype=np.uint8).reshape(3, 4) % 3
    row = {"model": "m", "latency_ms_p50": 1.0, "miou": 0.5, "iou": {"a": 0.5}}
    return {
        "safetensors": (tmp_path / "m.safetensors", lambda p: save_safetensors(model, {"arch": "fast_scnn"}, p)),
        "checkpoint": (tmp_path / "last.pt", lambda p: save_checkpoint(p, {"iteration": 1, "w": torch.ones(2)})),
        "label": (tmp_path / "im_label.png", lambda p: save_png(p, label_image(mask, [(1, 2, 3)] * 3))),
        "overlay": (tmp_path / "im_overlay.png", lambda p: save_png(p, Image.fromarray(np.zeros((3, 4, 3), np.uint8)))),
        "report": (tmp_path / "rep" / "results.json",
                   lambda p: write_report(p.parent, rows=[row], class_names=["a"], palette=None, grid=None, env={},
                                          settings={})),  # fmt: skip
        "results": (tmp_path / "results.json", lambda p: write_bytes_atomic(p, b"{}")),
    }


@pytest.mark.parametrize("number, reason", FAULTS)
@pytest.mark.parametrize("where", ["fsync", "replace"])
def test_every_writer_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch, number, reason, where):
    writers = _writers(tmp_path)
    for name, (path, write) in writers.items():
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"old " + name.encode())
    real = getattr(os, where)

    def failing(*args, **kwargs):  # fsync: the bytes are in the temporary file when the disk refuses them
        raise OSError(number, reason)

    monkeypatch.setattr(os, where, failing)
    for name, (path, write) in writers.items():
        with pytest.raises(WriteError) as info:
            write(path)
        message = str(info.value)
        named = path.parent if name == "report" else path  # the report: its first file written (a figure)
        assert "\n" not in message and message.startswith(f"{named}") and f"({reason})" in message, (name, message)
        assert ": cannot write " in message, (name, message)
        assert path.read_bytes() == b"old " + name.encode(), name  # intact
        assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")], name  # no temporary file
    monkeypatch.setattr(os, where, real)


@pytest.mark.parametrize("number, reason", FAULTS[:2])
def test_benchmark_json_on_a_full_or_read_only_disk(tmp_path, capsys, monkeypatch, number, reason):
    out = tmp_path / "bench"
    argv = ["benchmark", "fast_scnn", "--weights", "none", "--size", "32x32", "--no-isolate", "--min-time", "0.01",
            "--warmup-time", "0.01", "--budget", "0.5", "--no-e2e", "--no-train-step", "--no-probe", "--quiet",
            "--output", str(out)]  # fmt: skip
    assert main(argv) == 0
    before = (out / "benchmark.json").read_bytes()
    real_replace = os.replace

    def refusing(src, dst):
        if Path(dst).name == "benchmark.json":
            raise OSError(number, reason)
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", refusing)
    capsys.readouterr()
    assert main([*argv, "--overwrite"]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and f"{out / 'benchmark.json'}: cannot write the file ({reason})" in err[0], err
    assert (out / "benchmark.json").read_bytes() == before
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def _bench_worker(latency_ms: float | None) -> list[str]:
    """A benchmark worker command writing its case's row with ``latency_ms`` (None: killed by SIGKILL)."""
    if latency_ms is None:
        return _worker(None)
    code = ("import json, sys; c = json.load(open(sys.argv[1])); "
            "row = {k: c[k] for k in ('model', 'backend', 'batch', 'input_size')}; "
            f"row.update(latency_ms_p50={latency_ms}, error=None); json.dump(row, open(sys.argv[2], 'w'))")  # fmt: skip
    return [sys.executable, "-c", code]


def test_benchmark_keeps_finished_cases_on_a_crash_and_a_stop_and_resume_measures_the_rest(tmp_path, capsys,
                                                                                          monkeypatch):  # fmt: skip
    import importlib

    sweep_mod = importlib.import_module("segbench.bench.sweep")  # segbench.bench.sweep is also the function
    out = tmp_path / "bench"
    argv = ["benchmark", "fast_scnn", "--size", "32x32", "40x40", "48x48", "--no-probe", "--quiet",
            "--output", str(out)]  # fmt: skip
    plan = {32: 4.0, 40: None, 48: "stop"}  # the first case finishes, the second's worker dies, then SIGTERM

    def fake(case, timeout_s=600.0):
        what = plan[case.input_size[0]]
        if what == "stop":
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises before this ends
        return run_isolated(case, timeout_s=timeout_s, command=_bench_worker(what))

    monkeypatch.setattr(sweep_mod, "run_isolated", fake)
    assert main(argv) == 143
    err = capsys.readouterr().err
    assert "1 of 3 case(s) finished" in err and "--resume" in err
    rows = json.loads((out / "benchmark.json").read_text())
    assert [r["input_size"] for r in rows] == [[32, 32], [40, 40]] and rows[0]["latency_ms_p50"] == 4.0
    assert "worker killed by signal SIGKILL" in rows[1]["error"]
    assert json.loads((out / "benchmark.partial.json").read_text())["rows"] == [0]

    plan.update({32: 99.0, 40: 5.0, 48: 6.0})
    assert main([*argv, "--resume"]) == 0
    rows = json.loads((out / "benchmark.json").read_text())
    assert {tuple(r["input_size"]): r["latency_ms_p50"] for r in rows} == {(32, 32): 4.0, (40, 40): 5.0, (48, 48): 6.0}
    assert not (out / "benchmark.partial.json").exists()  # finished: no longer partial


def test_evaluate_stopped_after_one_image_keeps_it_and_resume_evaluates_only_the_rest(tmp_path, capsys,
                                                                                     monkeypatch, camvid_root):  # fmt: skip
    import segbench.engine.evaluate as engine

    argv = ["evaluate", "fast_scnn.camvid", "--data", str(camvid_root), "--quiet", "--boundary", "--ece", "--trimap",
            "--bootstrap", "50"]  # fmt: skip
    assert main([*argv, "--output", str(tmp_path / "whole")]) == 0  # the uninterrupted run, for reference
    whole = json.loads((tmp_path / "whole" / "metrics.json").read_text())
    real, scored = engine._score, []

    def then_terminated(variants, preds, item, keep, result):  # a real SIGTERM once the first image is scored
        real(variants, preds, item, keep, result)
        scored.append(item["name"])
        if len(scored) == 1:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(engine, "_score", then_terminated)
    out = tmp_path / "ev"
    assert main([*argv, "--output", str(out)]) == 143
    assert "stopped after 1 of 2 images" in capsys.readouterr().err and len(scored) == 1
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["partial"] is True and metrics["num_images"] == 1 and metrics["images_total"] == 2
    assert metrics["finished_images"] == scored and 0.0 <= metrics["pixel_accuracy"] <= 1.0
    assert (out / "evaluate.partial.npz").is_file() and not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    code = main([*argv, "--output", str(out), "--resume", "--tta-flip"])
    assert code == 2 and "measured with other settings (inference)" in capsys.readouterr().err
    assert main([*argv, "--output", str(out), "--resume"]) == 0
    assert len(scored) == 2 and scored[1] != scored[0]  # the resumed run evaluated the other image alone
    assert "resumed: 1 image(s)" in capsys.readouterr().err and not (out / "evaluate.partial.npz").exists()
    resumed = json.loads((out / "metrics.json").read_text())
    assert resumed["num_images"] == 2 and "partial" not in resumed
    for key in ("miou", "pixel_accuracy", "iou", "miou_interval", "boundary", "calibration", "trimap"):
        assert resumed[key] == whole[key], key  # the same numbers as one uninterrupted run
