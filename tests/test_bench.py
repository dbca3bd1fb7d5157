"""segbench.bench on tiny models and tiny settings (CPU, a few seconds)."""

import pytest
import torch
from torch import nn

from segbench.bench import (
    LatencyResult,
    benchmark_model,
    count_flops,
    count_params,
    environment_info,
    measure_latency,
    peak_memory_mib,
    weights_size_mb,
)

FAST = dict(warmup=1, min_iters=3, max_iters=20, min_time_s=0.02)


def tiny_net() -> nn.Module:
    # 3*8*3*3 + 8 = 224; BN 8 + 8 = 16; 8*4*1*1 = 32 -> 272 parameters
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 1, bias=False))


class Broken(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)

    def forward(self, x):
        raise RuntimeError("boom\nsecond line")


def test_count_params():
    assert count_params(tiny_net()) == 272


def test_count_flops_conv_matches_analytic_macs():
    cin, cout, k, h, w = 4, 6, 3, 10, 12
    conv = nn.Conv2d(cin, cout, k, padding=1, bias=False)
    conv.train()
    result = count_flops(conv, (1, cin, h, w))
    macs = k * k * cin * cout * h * w
    assert result["gmacs"] == pytest.approx(macs / 1e9)
    assert result["gflops"] == pytest.approx(2 * macs / 1e9)
    assert conv.training  # mode restored
    assert count_flops(conv, (2, cin, h, w))["gmacs"] == pytest.approx(2 * macs / 1e9)


def test_weights_size_mb_fp16_about_half():
    model = nn.Linear(256, 256)  # 65,792 parameters
    fp32 = weights_size_mb(model)
    fp16 = weights_size_mb(model, torch.float16)
    assert fp32 == pytest.approx(65792 * 4 / 1e6, rel=0.01)
    assert 0.45 < fp16 / fp32 < 0.55
    assert model.weight.dtype == torch.float32  # model untouched


def test_weights_size_mb_tied_weights_counted_once():
    a = nn.Linear(64, 64, bias=False)
    model = nn.Sequential(a, nn.Linear(64, 64, bias=False))
    model[1].weight = a.weight
    assert weights_size_mb(model) == pytest.approx(64 * 64 * 4 / 1e6, rel=0.05)


def test_measure_latency():
    r = measure_latency(tiny_net(), (2, 3, 16, 16), **FAST)
    assert isinstance(r, LatencyResult)
    assert r.latency_ms_p50 > 0 and r.latency_ms_mean > 0 and r.latency_ms_std >= 0
    assert r.latency_ms_p90 >= r.latency_ms_p50
    assert 3 <= r.iters <= 20
    assert r.batch == 2
    assert r.throughput_img_s == pytest.approx(2 / (r.latency_ms_p50 / 1e3))


def test_measure_latency_stops_at_max_iters():
    r = measure_latency(tiny_net(), (1, 3, 8, 8), warmup=0, min_iters=2, max_iters=4, min_time_s=100.0)
    assert r.iters == 4


def test_measure_latency_rejects_bad_settings():
    with pytest.raises(ValueError):
        measure_latency(tiny_net(), (1, 3, 8, 8), min_iters=5, max_iters=2)
    with pytest.raises(ValueError):
        measure_latency(tiny_net(), (1, 3, 8, 8), dtype=torch.float16)


def test_peak_memory_cpu():
    result = peak_memory_mib(tiny_net(), (1, 3, 32, 32))
    assert result["memory_mib"] >= 0
    assert result["memory_kind"] in ("cpu_peak_rss_increase", "cpu_maxrss_increase")


def test_environment_info():
    info = environment_info("cpu")
    for key in ("python", "torch", "torchvision", "numpy", "platform", "cpu", "threads", "device", "date"):
        assert key in info
    assert info["device"] == "cpu" and info["threads"] >= 1


def test_benchmark_model_returns_all_keys():
    before = torch.get_num_threads()
    row = benchmark_model(tiny_net(), input_size=(16, 20), batch=2, threads=1, **FAST)
    keys = [
        "params", "params_m", "size_mb", "size_mb_fp16", "gflops", "gmacs", "latency_ms_p50",
        "latency_ms_p90", "latency_ms_mean", "latency_ms_std", "throughput_img_s", "iters", "batch",
        "input_size", "device", "memory_mib", "memory_kind", "env",
    ]
    for key in keys:
        assert row[key] is not None, key
    assert row["error"] is None
    assert row["params"] == 272 and row["params_m"] == pytest.approx(272e-6)
    assert row["batch"] == 2 and row["input_size"] == [16, 20] and row["device"] == "cpu"
    assert row["gmacs"] == pytest.approx((3 * 8 * 9 + 8 * 4) * 16 * 20 / 1e9, rel=0.01)  # batch 1
    assert row["env"]["threads"] == 1
    assert torch.get_num_threads() == before


def test_benchmark_model_failure_is_recorded():
    row = benchmark_model(Broken(), input_size=(8, 8), **FAST)
    assert row["error"].startswith("RuntimeError: boom")
    assert "\n" not in row["error"]
    assert row["params"] == 8
    assert row["latency_ms_p50"] is None
