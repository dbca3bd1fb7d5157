"""The roofline per benchmark row (segbench.bench.roofline): bytes counted by hand on one convolution, the bound on
both sides of the ridge point, and the columns on a real benchmark row read against a real (test-budget) profile."""

import pytest
import torch
from torch import nn

from segbench.bench.hardware import hardware_profile
from segbench.bench.roofline import ROW_KEYS, add_roofline, count_cost, forward_cost, roofline_bound
from segbench.bench.runner import benchmark_model
from segbench.bench.schema import FIELDS
from segbench.bench.table import format_table


def test_one_conv_bytes_and_flops_by_hand():
    conv = nn.Conv2d(3, 8, 3, padding=1)  # 8*3*3*3 weights + 8 biases = 224 elements
    flops = 2 * 8 * 16 * 16 * 27  # one multiply-add per output element and kernel tap
    weights, activations = 224, 3 * 16 * 16 + 8 * 16 * 16  # input 768 + output 2048 elements
    for precision, width in (("fp32", 4), ("bf16", 2), ("int8", 1)):
        out = count_cost(conv, (1, 3, 16, 16), precision)
        assert out["gflops"] == pytest.approx(flops / 1e9) and out["gmacs"] == pytest.approx(flops / 2e9)
        assert out["bytes_weights_mb"] == pytest.approx(weights * width / 1e6)
        assert out["bytes_activations_mb"] == pytest.approx(activations * width / 1e6)
        assert out["bytes_per_forward_mb"] == pytest.approx((weights + activations) * width / 1e6)
        assert out["arithmetic_intensity_flop_per_byte"] == pytest.approx(flops / ((weights + activations) * width))
    assert conv.training  # the mode is restored
    assert not conv._forward_hooks  # the hooks are removed


def test_leaves_buffers_and_shared_weights():
    conv = nn.Conv2d(8, 8, 3, padding=1, bias=False)
    model = nn.Sequential(conv, nn.BatchNorm2d(8), nn.ReLU(inplace=True), conv)  # conv called twice
    out = count_cost(model, (1, 8, 4, 4), "fp32")
    # weights once: conv 576, BatchNorm weight, bias, running mean and var 4 x 8; num_batches_tracked left out
    assert out["bytes_weights_mb"] == pytest.approx((576 + 32) * 4 / 1e6)
    # each of the 4 leaf calls reads and writes 8*4*4 = 128 elements (the in-place ReLU too)
    assert out["bytes_activations_mb"] == pytest.approx(4 * 2 * 128 * 4 / 1e6)


def test_forward_cost_scales_activations_to_the_batch_not_the_weights():
    conv = nn.Conv2d(3, 8, 3, padding=1)
    one = count_cost(conv, (1, 3, 16, 16), "fp32")
    four = forward_cost(conv, (4, 3, 16, 16), "eager", "cpu")
    assert four["roofline_precision"] == "fp32" and four["gflops"] == pytest.approx(one["gflops"])  # per image
    assert four["bytes_per_forward_mb"] == pytest.approx(one["bytes_weights_mb"] + 4 * one["bytes_activations_mb"])
    assert four["arithmetic_intensity_flop_per_byte"] == pytest.approx(
        4 * one["gflops"] * 1e9 / (four["bytes_per_forward_mb"] * 1e6))
    assert forward_cost(conv, (1, 3, 16, 16), "bf16", "cpu")["roofline_precision"] == "bf16"
    with pytest.raises(ValueError, match="precision"):
        count_cost(conv, (1, 3, 16, 16), "fp8")


def test_bound_on_both_sides_of_the_ridge_point():
    # peak 100 GFLOP/s, 10 GB/s: ridge at 10 FLOP/byte
    memory = roofline_bound(2.0, 4.0, 100.0, 10.0, achieved_gflop_s=20.0)
    assert memory["ceiling"] == "memory" and memory["bound_gflop_s"] == pytest.approx(40.0)
    assert memory["bound_ms"] == pytest.approx(2.0 / 40.0 * 1e3) and memory["fraction"] == pytest.approx(0.5)
    assert memory["ridge_flop_per_byte"] == pytest.approx(10.0)
    compute = roofline_bound(2.0, 50.0, 100.0, 10.0, achieved_gflop_s=25.0)
    assert compute["ceiling"] == "compute" and compute["bound_gflop_s"] == pytest.approx(100.0)
    assert compute["bound_ms"] == pytest.approx(20.0) and compute["fraction"] == pytest.approx(0.25)
    assert roofline_bound(1.0, 10.0, 100.0, 10.0)["fraction"] is None
    with pytest.raises(ValueError, match="positive"):
        roofline_bound(1.0, 0.0, 100.0, 10.0)


def test_every_benchmark_row_gets_the_roofline_columns():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 1))
    row = benchmark_model(model, input_size=(24, 24), batch=2, min_time_s=0.02, budget_s=0.05, warmup=1,
                          min_iters=2, warmup_s=0.0)  # fmt: skip
    assert row["error"] is None and row["bytes_per_forward_mb"] > row["bytes_weights_mb"] > 0
    profile = hardware_profile("cpu", 1)  # the test-sized probe budget of conftest (SEGBENCH_PROBE_BUDGET_S)
    add_roofline(row, profile)
    assert set(ROW_KEYS) <= set(row) and set(ROW_KEYS) <= {f.name for f in FIELDS}
    gemm = profile["precisions"]["fp32"]["measured"]["gflop_s"]
    # the compute ceiling: the theoretical peak, or the measured GEMM where a low assumed clock puts it higher
    peak = max(profile["precisions"]["fp32"]["theoretical_gflop_s"], gemm)
    bandwidth = profile["memory_bandwidth"]["triad_gb_s"]
    assert row["roofline_error"] is None and row["roofline_peak_gflop_s"] == peak
    expected = min(peak, row["arithmetic_intensity_flop_per_byte"] * bandwidth)
    assert row["roofline_bound_gflop_s"] == pytest.approx(expected)
    assert row["roofline_ceiling"] == ("compute" if expected == peak else "memory")
    assert row["roofline_bound_ms"] == pytest.approx(row["gflops"] * 2 / expected * 1e3)
    assert row["roofline_fraction"] == pytest.approx(row["achieved_gflop_s"] / expected)
    assert row["roofline_gemm_fraction"] == pytest.approx(
        row["achieved_gflop_s"] / min(gemm, row["arithmetic_intensity_flop_per_byte"] * bandwidth))
    header, line = format_table([{**row, "model": "m", "input_size": [24, 24]}]).splitlines()[:2]
    assert "roof ms" in header and "%roof" in header
    assert f"{row['roofline_bound_ms']:.2f}" in line and f"{100 * row['roofline_fraction']:.1f}" in line


def test_missing_profile_peak_or_bandwidth_gives_none_and_a_reason():
    row = {"gflops": 1.0, "batch": 1, "arithmetic_intensity_flop_per_byte": 5.0, "achieved_gflop_s": 2.0,
           "roofline_precision": "bf16", "error": None}  # fmt: skip
    add_roofline(row, None)
    assert row["roofline_bound_gflop_s"] is None and "no hardware profile" in row["roofline_error"]
    add_roofline(row, {"precisions": {"bf16": {"theoretical_gflop_s": 10.0}}, "memory_bandwidth": {"error": "oom"}})
    assert row["roofline_fraction"] is None and "triad bandwidth" in row["roofline_error"]
    add_roofline(row, {"precisions": {"fp32": {"theoretical_gflop_s": 10.0}}, "memory_bandwidth": {"triad_gb_s": 1.0}})
    assert row["roofline_ceiling"] is None and "no theoretical bf16 peak" in row["roofline_error"]
    add_roofline(row, {"precisions": {"bf16": {"theoretical_gflop_s": 10.0}}, "memory_bandwidth": {"triad_gb_s": 1.0}})
    assert row["roofline_error"] is None and row["roofline_ceiling"] == "memory"
    assert row["roofline_bound_gflop_s"] == pytest.approx(5.0) and row["roofline_gemm_fraction"] is None
    external = {"gflops": None, "arithmetic_intensity_flop_per_byte": None, "error": None}
    add_roofline(external, {"precisions": {"fp32": {"theoretical_gflop_s": 10.0}},
                            "memory_bandwidth": {"triad_gb_s": 1.0}})  # fmt: skip
    assert external["roofline_bound_gflop_s"] is None and "FLOP and byte count" in external["roofline_error"]


def test_bytes_counted_on_the_models_device_and_dtype():
    model = nn.Conv2d(3, 4, 1).to(torch.float64)  # a float64 model runs with a float64 input
    out = count_cost(model, (1, 3, 8, 8), "fp16")
    assert out["bytes_weights_mb"] == pytest.approx((12 + 4) * 2 / 1e6)


def test_a_torchscript_module_gets_its_flops_and_no_byte_count():
    scripted = torch.jit.script(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU()))
    out = forward_cost(scripted, (2, 3, 16, 16), "eager", "cpu")
    assert out["gflops"] == pytest.approx(2 * 8 * 16 * 16 * 27 / 1e9)  # FLOPs still counted
    assert out["bytes_per_forward_mb"] is None and out["arithmetic_intensity_flop_per_byte"] is None
    row = {**out, "batch": 2, "error": None, "achieved_gflop_s": 1.0}
    add_roofline(row, {"precisions": {"fp32": {"theoretical_gflop_s": 10.0}}, "memory_bandwidth": {"triad_gb_s": 1.0}})
    assert row["roofline_bound_ms"] is None and "TorchScript" in row["roofline_error"]


def test_a_measured_rate_above_the_theoretical_peak_is_the_compute_ceiling():
    # a VM's 'cpu MHz' below the clock the CPU ran at puts the theoretical peak under the GEMM it measured
    row = {"gflops": 100.0, "batch": 1, "arithmetic_intensity_flop_per_byte": 1000.0, "achieved_gflop_s": 300.0,
           "roofline_precision": "bf16", "error": None}  # fmt: skip
    profile = {"precisions": {"bf16": {"theoretical_gflop_s": 332.0, "measured": {"gflop_s": 368.0}}},
               "memory_bandwidth": {"triad_gb_s": 48.0}}  # fmt: skip
    add_roofline(row, profile)
    assert row["roofline_ceiling"] == "compute" and row["roofline_bound_gflop_s"] == pytest.approx(368.0)
    assert row["roofline_fraction"] == pytest.approx(300.0 / 368.0)
    profile["precisions"]["bf16"]["measured"]["gflop_s"] = 200.0  # below the peak: the peak stays the roof
    add_roofline(row, profile)
    assert row["roofline_bound_gflop_s"] == pytest.approx(332.0)
