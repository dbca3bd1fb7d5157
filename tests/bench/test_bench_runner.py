"""Sweeps, cases and subprocess isolation (segbench.bench.runner / worker), and the backend interface
seen from the benchmark (with a stand-in backends module)."""

import dataclasses
import json
import subprocess
import sys
import types

import pytest
import torch

from segbench.bench import backends as real_backends
from segbench.bench import measure, runner
from segbench.bench.case import make_case
from segbench.bench.isolate import run_isolated
from segbench.bench.runner import benchmark_model, run_case
from segbench.bench.sweep import sweep
from segbench.bench.table import check_specs, format_table, parse_sizes
from segbench.errors import UserError

QUICK = {"warmup": 1, "warmup_s": 0.0, "min_iters": 3, "max_iters": 30, "min_time_s": 0.01, "budget_s": 0.5}


def test_parse_sizes():
    assert parse_sizes(["360x480", "520X520"]) == [(360, 480), (520, 520)]
    assert parse_sizes(["520", "480"]) == [(520, 480)]  # the older form --size H W
    assert parse_sizes([64, 32]) == [(64, 32)]
    for bad in (["520"], ["abc"], ["10x"], ["0x5"], ["1", "2", "3"]):
        with pytest.raises(UserError, match="--size"):
            parse_sizes(bad)


def test_check_specs(tmp_path):
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"x")
    errors = check_specs(["fast_scnn", "fast_scnn.camvid", "nosuchnet.tag", str(weights), "gone.safetensors"])
    assert set(errors) == {"nosuchnet.tag", "gone.safetensors"}
    assert "unknown model" in errors["nosuchnet.tag"] and "no such weights file" in errors["gone.safetensors"]


# --- subprocess handling (cheap stand-in children: no torch import) -----------------------------


def _child(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_run_isolated_reads_the_child_row():
    code = "import json, sys; json.dump({'model': 'm', 'error': None, 'latency_ms_p50': 1.5}, open(sys.argv[2], 'w'))"
    row = run_isolated(make_case("m"), command=_child(code))
    assert row["latency_ms_p50"] == 1.5 and row["worker_exit"] == 0


def test_child_peak_rss_does_not_include_its_parents_memory():
    # Linux carries the parent's RSS high-water mark over fork/vfork + exec into ru_maxrss; VmHWM does not.
    ballast = bytearray(1536 * 2**20)  # a parent 1.5 GiB larger than the child (python + torch: ~550 MiB here)
    ballast[:: 4096] = b"x" * len(ballast[:: 4096])  # touch every page so it is resident
    code = "from segbench.bench.memory import process_peak_rss_mib as p; print(p())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert 1 < float(out) < 1200  # the child's own memory, not the parent's 1.5 GiB on top
    del ballast


@pytest.mark.parametrize(
    ("code", "timeout", "expected"),
    [
        (
            "import sys; print('cannot import'); sys.exit(3)",
            60,
            "worker exited with code 3 without a result: cannot import",
        ),
        (
            "import os, signal; os.kill(os.getpid(), signal.SIGKILL)",
            60,
            "worker killed by signal SIGKILL (out of memory?)",
        ),
        ("import time; time.sleep(60)", 0.5, "timeout: no result after 0.5 s"),
        ("import sys; open(sys.argv[2], 'w').write('{not json')", 60, "worker exited with code 0 without a result"),
    ],
)
def test_run_isolated_failures_become_error_rows(code, timeout, expected):
    case = make_case("fast_scnn", batch=2, input_size=(32, 48))
    row = run_isolated(case, timeout_s=timeout, command=_child(code))
    assert row["error"].startswith(expected), row["error"]
    assert row["model"] == "fast_scnn" and row["batch"] == 2 and row["input_size"] == [32, 48]
    assert row["latency_ms_p50"] is None if "latency_ms_p50" in row else True
    assert row["worker_s"] < 30


@pytest.mark.slow  # two real subprocesses, each importing torch (about 5 s each on an idle 2-core machine)
def test_sweep_in_fresh_subprocesses_goes_on_after_a_failing_model(tmp_path):
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a safetensors file")
    seen = []
    rows = sweep(
        [str(broken), "fast_scnn"], sizes=[(32, 32)], threads=1, latency=QUICK, e2e=False, train_step=False,
        on_row=lambda row, i, n: seen.append((i, n)),
    )  # fmt: skip
    assert seen == [(0, 2), (1, 2)]
    bad, good = rows
    assert bad["error"] and bad["error_kind"] == "user" and str(broken) in bad["error"]
    assert good["error"] is None and good["model"] == "fast_scnn" and good["latency_ms_p50"] > 0
    assert good["env"]["threads"] == 1 and good["env"]["omp_num_threads"] == "1"
    assert (
        good["worker_exit"] == 0
        and good["peak_rss_mib_total"] >= good["peak_rss_mib"] > good["rss_before_model_mib"] > 0
    )


def test_worker_main_writes_the_row(tmp_path):
    from segbench.bench.worker import main

    case_file, row_file = tmp_path / "case.json", tmp_path / "row.json"
    case_file.write_text(json.dumps(make_case("nosuchnet").to_dict()))
    assert main([str(case_file), str(row_file)]) == 0
    row = json.loads(row_file.read_text())
    assert row["model"] == "nosuchnet" and "unknown model" in row["error"]
    assert main([str(tmp_path / "absent.json"), str(row_file)]) == 2
    assert main([]) == 2


# --- one case in this process ---------------------------------------------------------------------


def test_run_case_measures_end_to_end_and_a_training_step(tmp_path):
    row = run_case(make_case("fast_scnn", input_size=(32, 48), threads=1, latency=QUICK))
    assert row["error"] is None, row["error"]
    assert row["latency_ms_p50"] > 0 and row["gflops"] > 0 and row["params"] == 1_137_795
    assert row["e2e_input_size"] == [32, 48] and row["e2e_images"] >= 8  # the 8 shipped sample images
    assert row["e2e_ms_p50"] >= row["e2e_model_ms"] > 0
    assert row["sample_miou"] is None  # 19 random classes are not CamVid's 11
    assert row["train_batch"] == 2 and row["train_memory_mib"] >= 0 and "train_error" not in row
    assert row["peak_rss_mib"] > 0


def test_run_case_unknown_model_and_unloadable_file(tmp_path):
    row = run_case(make_case("nosuchnet"))
    assert row["error_kind"] == "user" and "unknown model" in row["error"]
    assert row["latency_ms_p50"] is None if "latency_ms_p50" in row else True


def test_format_table_lists_errors_and_flags_unconverged():
    ok = {"model": "a", "backend": "eager", "batch": 1, "input_size": [8, 8], "latency_ms_p50": 2.0,
          "latency_ms_p90": 3.0, "ci_rel": 0.05, "converged": False, "error": None}  # fmt: skip
    text = format_table([ok, {"model": "b", "error": "boom"}])
    lines = text.splitlines()
    assert "p50 ms" in lines[0] and "5.0*" in lines[1]
    assert lines[2].startswith("b") and lines[2].endswith("error: boom")


# --- the backend interface, with a stand-in segbench.bench.backends ------------------------------


class _Unavailable(UserError):
    pass


class _Predictor:
    def __init__(self, model, backend):
        self.model, self.backend, self.notes, self.calls = model, backend, f"{backend} via stand-in", 0

    def __call__(self, x):
        self.calls += 1
        with torch.inference_mode():
            return self.model(x).float()


@pytest.fixture
def fake_backends(monkeypatch):
    mod = types.ModuleType("segbench.bench.backends")
    mod.BACKENDS = ("eager", "double", "missing")
    mod.BackendUnavailable = _Unavailable
    mod.prepared = []

    def get_backend(name):  # the registry's answer for the stand-in names; unknown ones refused as it does
        if name not in mod.BACKENDS:
            raise UserError(f"--backend {name!r}: unknown backend; choose from {', '.join(mod.BACKENDS)}")
        return dataclasses.replace(real_backends.get_backend("onnxruntime"), name=name)

    def prepare(model, backend, example, device="cpu", calibration=None):
        get_backend(backend)
        mod.prepared.append((backend, tuple(example.shape), calibration))
        if backend == "missing":
            raise _Unavailable("backend 'missing' needs pip install segbench[missing]")
        return _Predictor(model, backend)

    mod.prepare = prepare
    mod.get_backend = get_backend
    monkeypatch.setitem(sys.modules, "segbench.bench.backends", mod)
    monkeypatch.setattr(runner, "backends", mod)
    monkeypatch.setattr(measure, "backends", mod)
    return mod


def test_benchmark_goes_through_backends_prepare(fake_backends):
    net = torch.nn.Conv2d(3, 4, 1)
    row = benchmark_model(net, input_size=(8, 12), batch=2, backend="double", **QUICK)
    assert row["error"] is None and row["backend"] == "double" and row["backend_notes"] == "double via stand-in"
    assert fake_backends.prepared == [("double", (2, 3, 8, 12), None)]
    missing = benchmark_model(net, input_size=(8, 12), backend="missing", **QUICK)
    assert missing["error_kind"] == "user" and "pip install segbench[missing]" in missing["error"]
    assert missing["latency_ms_p50"] is None and missing["params"] == 16  # size still measured
    unknown = benchmark_model(net, input_size=(8, 12), backend="nope", **QUICK)
    assert unknown["error_kind"] == "user" and "unknown backend" in unknown["error"]


def test_sweep_rows_record_each_backend(fake_backends):
    rows = sweep(["fast_scnn"], backends=["eager", "missing"], batches=[1, 2], sizes=[(16, 16)], isolate=False,
                 latency=QUICK, e2e=False, train_step=False, threads=1)  # fmt: skip
    assert [(r["backend"], r["batch"]) for r in rows] == [("eager", 1), ("eager", 2), ("missing", 1), ("missing", 2)]
    assert all(r["error"] is None for r in rows[:2]) and all("segbench[missing]" in r["error"] for r in rows[2:])
    assert json.loads(json.dumps(rows, default=str))[0]["latency_ms_p50"] > 0


def test_benchmark_with_onnxruntime_backend():
    pytest.importorskip("onnxruntime")
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 1))
    row = benchmark_model(net, input_size=(16, 24), backend="onnxruntime", threads=1, **QUICK)
    assert row["error"] is None, row["error"]
    assert row["backend"] == "onnxruntime" and "ONNX Runtime" in row["backend_notes"]
    assert row["timer"] == "perf_counter" and row["latency_ms_p50"] > 0 and row["memory_mib"] >= 0


def test_benchmark_help_lists_every_backend():
    from segbench.bench.backends import BACKENDS
    from segbench.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command").choices["benchmark"]
    help_text = next(a.help for a in sub._actions if a.dest == "backend")
    assert all(b in help_text for b in BACKENDS)
