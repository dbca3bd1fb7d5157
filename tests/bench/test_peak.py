"""Peaks per precision: the theoretical formula from cpuinfo flags, the GEMM probe, its per-machine cache, and the
row's %peak against the precision the backend computes in."""

import pytest
import torch
from torch import nn

from segbench.bench import peak
from segbench.bench.peak import backend_precision, measure_peaks, native_precisions, probe_peaks, theoretical_peaks
from segbench.bench.runner import add_probe, benchmark_model
from segbench.bench.table import format_probe, format_table

SPR = {"vendor": "GenuineIntel", "family": 6, "model": 143, "physical_cores": 4, "frequency_ghz": 2.0,
       "frequency_source": "test", "isa": ["avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16",
                                           "amx_int8", "amx_tile", "avx512_fp16"]}  # fmt: skip


def test_theoretical_peaks_follow_the_matrix_units():
    out = theoretical_peaks("cpu", threads=2, info=SPR)
    assert out["fp32"]["gflop_s"] == pytest.approx(2 * 2.0 * 64)
    assert out["bf16"]["gflop_s"] == pytest.approx(2 * 2.0 * 1024) and "AMX-BF16" in out["bf16"]["formula"]
    assert out["int8"]["gflop_s"] == pytest.approx(2 * 2.0 * 2048) and "Optimization Reference" in out["int8"]["source"]
    assert out["fp16"]["gflop_s"] == pytest.approx(2 * 2.0 * 128)
    no_amx = theoretical_peaks("cpu", threads=8, info=dict(SPR, isa=["avx2", "fma", "avx512f", "avx512_vnni"]))
    assert no_amx["int8"]["gflop_s"] == pytest.approx(4 * 2.0 * 256)  # VNNI, capped at 4 cores
    assert no_amx["bf16"]["gflop_s"] == no_amx["fp32"]["gflop_s"]  # no bf16 unit: the fp32 rate
    assert no_amx["bf16"]["native"] is False and out["bf16"]["native"] and no_amx["int8"]["native"]


def test_backend_precision():
    assert [backend_precision(b) for b in ("eager", "compile", "onnxruntime", "openvino")] == ["fp32"] * 4
    assert [backend_precision(b) for b in ("bf16", "openvino_bf16", "compile_bf16")] == ["bf16"] * 3
    assert [backend_precision(b) for b in ("onnxruntime_int8", "openvino_int8", "compile_int8")] == ["int8"] * 3


def test_measure_peaks_runs_a_gemm_per_precision():
    out = measure_peaks("cpu", ("fp32", "bf16", "int8"), n=64, repeats=1)
    for precision in ("fp32", "bf16", "int8"):
        assert out[precision].get("gflop_s", 0) > 0 or "error" in out[precision]
    assert out["fp32"]["gflop_s"] > 0 and out["fp32"]["kernel"] == "torch.mm" and out["fp32"]["n"] == 64
    grown = measure_peaks("cpu", ("fp32", "bf16"), budget_s=0.05)  # the side grows within the budget
    assert grown["fp32"]["native"] and grown["fp32"]["sizes"][0] == 64
    assert grown["bf16"].get("native", False) == native_precisions()["bf16"] or "error" in grown["bf16"]


def test_probe_is_cached_per_machine_and_read_from_the_profile(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGBENCH_CACHE_DIR", str(tmp_path))
    profiles, gemms = [], []

    def fake_profile(device, threads, refresh=False, cache=True):
        profiles.append(refresh)
        return {"busy_pct": 1.0, "precisions": {
            "fp32": {"native": True, "measured": {"gflop_s": 10.0, "n": 512}},
            "bf16": {"native": False, "measured": {"gflop_s": 0.5, "n": 256, "emulated": True}}}}  # fmt: skip

    def fake_gemms(device, precisions=None, n=None):
        gemms.append((precisions, n))
        return {p: {"gflop_s": 3.0} for p in precisions}

    monkeypatch.setattr(peak, "hardware_profile", fake_profile)
    monkeypatch.setattr(peak, "measure_peaks", fake_gemms)
    first, second = probe_peaks("cpu", 1), probe_peaks("cpu", 1)
    assert profiles == [False] and gemms == [(("int8",), None)]  # only what the profile lacks is timed again
    assert not first["cached"] and second["cached"] and first["busy_pct"] == 1.0
    assert second["measured"]["fp32"] == {"gflop_s": 10.0, "n": 512, "native": True, "emulated": False}
    assert second["measured"]["bf16"]["emulated"] and second["measured"]["int8"] == {"gflop_s": 3.0}
    assert list(second["measured"]) == ["fp32", "bf16", "int8"] and "fp32" in second["theoretical"]
    probe_peaks("cpu", 1, refresh=True)
    assert profiles == [False, True]
    given = {"precisions": {p: {"native": True, "measured": {"gflop_s": 7.0}} for p in ("fp32", "bf16", "int8")}}
    assert probe_peaks("cpu", 1, refresh=True, profile=given)["measured"]["int8"]["gflop_s"] == 7.0
    assert profiles == [False, True]  # a profile given (segbench benchmark's) is not measured again
    probe_peaks("cpu", 1, n=32)  # a small probe times its own GEMMs and is never cached
    assert gemms[-1] == (("fp32", "bf16", "int8"), 32)
    assert probe_peaks("cpu", 1)["measured"]["fp32"]["gflop_s"] == 7.0
    assert "fp32" in format_probe(second) and "10.0 GFLOP/s measured" in format_probe(second)


def test_rows_read_their_rate_against_the_precision_of_the_backend():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 2, 1))
    row = benchmark_model(net, input_size=(16, 16), min_iters=2, min_time_s=0, warmup=1, warmup_s=0)
    assert row["error"] is None and row["peak_precision"] == "fp32" and row["peak_formula"].startswith("fp32: ")
    add_probe(row, {"measured": {"fp32": {"gflop_s": 2 * row["achieved_gflop_s"]}}})
    assert row["probe_fraction"] == pytest.approx(0.5) and row["peak_probe"]["measured"]
    assert " fp32 " in format_table([row]).splitlines()[1] and "%probe" in format_table([row])
    if torch.ops.mkldnn._is_mkldnn_bf16_supported():  # the backend runs; whether bf16 is native is the flags' say
        bf16 = benchmark_model(net, input_size=(16, 16), backend="bf16", min_iters=2, min_time_s=0, warmup=1,
                               warmup_s=0)  # fmt: skip
        if native_precisions()["bf16"]:
            assert bf16["peak_precision"] == "bf16" and bf16["peak_native"]
            assert bf16["peak_gflop_s"] > row["peak_gflop_s"]
        else:
            assert bf16["peak_precision"] is None and bf16["peak_native"] is False
            assert bf16["peak_gflop_s"] == row["peak_gflop_s"] and "emulated" in bf16["peak_formula"]
