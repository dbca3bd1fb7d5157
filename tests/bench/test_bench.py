"""segbench.bench on tiny models and tiny settings (CPU, a few seconds)."""

from typing import ClassVar

import numpy as np
import pytest
import torch
from torch import nn

from segbench.bench import (
    LatencyResult,
    benchmark_model,
    count_flops,
    count_params,
    cpu_fp32_peak,
    environment_info,
    measure_end_to_end,
    measure_latency,
    measure_matmul_peak,
    median_ci,
    peak_memory_mib,
    train_step_memory_mib,
    weights_size_mb,
)
from segbench.bench.latency import CudaEventTimer, time_calls
from segbench.preprocessing import Preprocessing
from timing_fakes import fake_timing

FAST = {"warmup": 1, "warmup_s": 0.0, "min_iters": 3, "max_iters": 20, "min_time_s": 0.02}


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
    assert r.timer == "perf_counter" and r.warmup_iters >= 1
    if r.iters >= 6:
        assert r.latency_ms_ci_low <= r.latency_ms_p50 <= r.latency_ms_ci_high


def test_measure_latency_times_any_callable():
    net = tiny_net().eval()
    calls = []

    def predictor(x):
        calls.append(tuple(x.shape))
        return net(x)

    r = measure_latency(predictor, (1, 3, 8, 8), warmup=2, warmup_s=0, min_iters=6, max_iters=6, min_time_s=0)
    assert r.iters == 6 and len(calls) == 8 and calls[0] == (1, 3, 8, 8)


def test_measure_latency_stops_at_max_iters():
    r = measure_latency(tiny_net(), (1, 3, 8, 8), warmup=0, warmup_s=0, min_iters=2, max_iters=4, min_time_s=100.0)
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
        "params",
        "params_m",
        "size_mb",
        "size_mb_fp16",
        "gflops",
        "gmacs",
        "latency_ms_p50",
        "latency_ms_p90",
        "latency_ms_mean",
        "latency_ms_std",
        "throughput_img_s",
        "iters",
        "batch",
        "input_size",
        "device",
        "memory_mib",
        "memory_kind",
        "env",
        "backend",
        "converged",
        "timer",
        "achieved_gflop_s",
        "peak_gflop_s",
        "peak_kind",
        "peak_formula",
    ]
    for key in keys:
        assert row[key] is not None, key
    assert row["error"] is None
    assert row["params"] == 272 and row["params_m"] == pytest.approx(272e-6)
    assert row["batch"] == 2 and row["input_size"] == [16, 20] and row["device"] == "cpu"
    assert row["gmacs"] == pytest.approx((3 * 8 * 9 + 8 * 4) * 16 * 20 / 1e9, rel=0.01)  # batch 1
    assert row["env"]["threads"] == 1 and row["env"]["cudnn_benchmark"] in (True, False)
    assert torch.get_num_threads() == before
    assert row["backend"] == "eager"
    assert row["achieved_gflop_s"] == pytest.approx(row["gflops"] * 2 / (row["latency_ms_p50"] / 1e3))
    if row["peak_gflop_s"]:  # theoretical peak known for this CPU
        assert row["peak_fraction"] == pytest.approx(row["achieved_gflop_s"] / row["peak_gflop_s"])


def test_benchmark_model_failure_is_recorded():
    row = benchmark_model(Broken(), input_size=(8, 8), **FAST)
    assert row["error"].startswith("RuntimeError: boom")
    assert "\n" not in row["error"]
    assert row["params"] == 8
    assert row["latency_ms_p50"] is None


# --- stopping rule --------------------------------------------------------------------------------


def test_median_ci_order_statistics():
    values = list(range(1, 101))  # x(k) = k
    # n = 100: the classic distribution-free 95% interval of the median is [x(40), x(61)] (coverage 0.965).
    assert median_ci(values) == (40, 61)
    assert median_ci(list(range(6))) == (0, 5)  # n = 6: only [min, max] reaches 95% (1 - 2/64)
    assert median_ci(list(range(5))) is None  # n = 5: [min, max] covers 1 - 2/32 = 93.75% < 95%
    lo, hi = median_ci(values, confidence=0.5)
    assert 40 < lo <= 50 < hi < 61
    with pytest.raises(ValueError):
        median_ci(values, confidence=1.0)

def test_time_calls_stops_when_median_is_stable():
    timer, clock = fake_timing([10.0, 10.1, 9.9, 10.05, 9.95])
    out = time_calls(lambda: None, timer, warmup=3, warmup_s=0, min_iters=10, min_time_s=0, budget_s=100,
                     rel_ci=0.02, clock=clock)  # fmt: skip
    assert out["converged"] and out["warmup_iters"] == 3
    assert len(out["times_ms"]) == 10  # the first check (at min_iters) already meets 2%
    assert out["ci_rel"] <= 0.02 and out["ci"][0] <= 10.0 <= out["ci"][1]


def test_time_calls_budget_ends_an_unstable_median():
    timer, clock = fake_timing([1.0, 50.0, 5.0, 30.0, 2.0, 100.0])  # ms: spread far beyond 2%
    out = time_calls(lambda: None, timer, warmup=0, warmup_s=0, min_iters=5, min_time_s=0, budget_s=1.0,
                     rel_ci=0.02, clock=clock)  # fmt: skip
    assert not out["converged"]
    assert sum(out["times_ms"]) >= 1000.0  # ran until the 1 s budget was spent
    assert out["ci_rel"] > 0.02


def test_time_calls_warms_up_by_time_and_count():
    timer, clock = fake_timing([125.0])  # exact in binary: 8 calls make exactly 1 s
    out = time_calls(lambda: None, timer, warmup=2, warmup_s=1.0, min_iters=1, max_iters=1, min_time_s=0,
                     clock=clock)  # fmt: skip
    assert out["warmup_iters"] == 8 and out["warmup_s"] == 1.0  # 1 s of 125 ms calls, more than 2 calls
    assert len(out["times_ms"]) == 1 and not out["converged"]  # 1 call: no interval exists


def test_time_calls_rejects_bad_settings():
    timer, clock = fake_timing([1.0])
    with pytest.raises(ValueError):
        time_calls(lambda: None, timer, rel_ci=0, clock=clock)
    with pytest.raises(ValueError):
        time_calls(lambda: None, timer, min_iters=3, max_iters=2, clock=clock)


class _FakeEvent:
    """Stands in for torch.cuda.Event: record() stores a time, elapsed_time() gives ms between two."""

    log: ClassVar[list] = []
    now: ClassVar[float] = 0.0

    def __init__(self, enable_timing=False):
        assert enable_timing
        self.t = None

    def record(self, stream=None):
        self.t = _FakeEvent.now
        _FakeEvent.log.append("record")

    def synchronize(self):
        _FakeEvent.log.append("synchronize")

    def elapsed_time(self, end):
        return (end.t - self.t) * 1e3


def test_cuda_event_timer_uses_events(monkeypatch):
    monkeypatch.setattr(torch.cuda, "Event", _FakeEvent)
    _FakeEvent.log, _FakeEvent.now = [], 0.0
    timer = CudaEventTimer("cuda")

    def work():
        _FakeEvent.now += 0.004  # the "GPU" takes 4 ms

    assert timer(work) == pytest.approx(4.0)
    assert _FakeEvent.log == ["record", "record", "synchronize"]  # start, end, wait for the end event


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_measure_latency_cuda_events_on_gpu():
    r = measure_latency(tiny_net(), (1, 3, 64, 64), device="cuda", **FAST)
    assert r.timer == "cuda_events" and r.latency_ms_p50 > 0


# --- memory, peak, end to end ---------------------------------------------------------------------


def test_train_step_memory_cpu_changes_weights_and_restores_mode():
    net = tiny_net().eval()
    before = net[0].weight.detach().clone()
    out = train_step_memory_mib(net, (2, 3, 16, 16), num_classes=4)
    assert out["train_memory_mib"] >= 0 and out["train_batch"] == 2
    assert out["train_memory_kind"] in ("cpu_peak_rss_increase", "cpu_maxrss_increase")
    assert out["train_memory_reserved_mib"] is None
    assert not torch.equal(before, net[0].weight)  # two SGD steps ran
    assert not net.training and net[0].weight.grad is None


def test_cpu_fp32_peak_formula():
    info = {"vendor": "GenuineIntel", "family": 6, "model": 143, "physical_cores": 4, "frequency_ghz": 3.0,
            "frequency_source": "test", "isa": ["avx", "avx2", "fma", "avx512f"]}  # fmt: skip
    out = cpu_fp32_peak(threads=2, info=info)
    assert out["peak_gflops"] == pytest.approx(2 * 3.0 * 64)  # 2 of 4 cores x 3 GHz x 64 FLOP/cycle
    assert out["peak_formula"] == "2 cores x 3.0 GHz x 64 FLOP/cycle" and out["peak_kind"] == "theoretical"
    zen4 = dict(info, vendor="AuthenticAMD", family=25, model=17)
    assert cpu_fp32_peak(threads=8, info=zen4)["peak_gflops"] == pytest.approx(4 * 3.0 * 32)  # capped at 4 cores
    assert cpu_fp32_peak(threads=1, info=dict(info, frequency_ghz=None))["peak_gflops"] is None


def test_measure_matmul_peak_cpu():
    out = measure_matmul_peak("cpu", n=64, repeats=2)
    assert out["peak_gflops"] > 0 and out["peak_kind"] == "measured matmul peak"


def test_end_to_end_stages_and_miou(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    paths, masks = [], []
    for i in range(2):
        img = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
        Image.fromarray(img).save(tmp_path / f"{i}.png")
        paths.append(tmp_path / f"{i}.png")
        mask = (img[..., 0] > 127).astype(np.int64)  # class 1 where red is bright
        mask[0, 0] = 255  # ignored
        masks.append(mask)
    seen = []

    def predictor(x):  # logits: class 1 where the red channel is above the middle (undo normalisation)
        seen.append(tuple(x.shape))
        red = x[:, :1] * 0.5 + 0.5
        return torch.cat([0.5 - red, red - 0.5], 1)

    out = measure_end_to_end(predictor, paths, Preprocessing((0.5,) * 3, (0.5,) * 3), min_time_s=0,
                             min_rounds=2, warmup=1, num_classes=2, masks=masks)  # fmt: skip
    assert out["e2e_images"] == 4 and len(seen) == 5 and seen[0] == (1, 3, 20, 30)
    # every stage timed (medians of the stages need not add up to the median total: no timing comparison,
    # which another test process on the same cores can upset)
    assert out["e2e_ms_p50"] > 0
    assert all(out[k] > 0 for k in ("e2e_decode_ms", "e2e_preprocess_ms", "e2e_model_ms", "e2e_postprocess_ms"))
    assert out["miou"] > 0.95  # resampling is identity here; the only errors are pixels at exactly 127.5
    resized = measure_end_to_end(
        predictor, paths[:1], Preprocessing((0.5,) * 3, (0.5,) * 3), input_size=(8, 12), min_time_s=0, warmup=0
    )
    assert seen[-1] == (1, 3, 8, 12) and resized["e2e_input_size"] == [8, 12]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_memory_and_peak_on_gpu():
    inference = peak_memory_mib(tiny_net(), (2, 3, 64, 64), device="cuda")
    assert inference["memory_kind"] == "cuda_peak_allocated"
    assert inference["memory_reserved_mib"] >= inference["memory_mib"] > 0
    train = train_step_memory_mib(tiny_net(), (2, 3, 64, 64), num_classes=4, device="cuda")
    assert train["train_memory_kind"] == "cuda_peak_allocated"
    assert train["train_memory_reserved_mib"] >= train["train_memory_mib"] > 0
    peak = measure_matmul_peak("cuda", n=1024, repeats=2)
    assert peak["peak_gflops"] > 0 and peak["peak_kind"] == "measured matmul peak"
    row = benchmark_model(tiny_net(), input_size=(32, 32), device="cuda", **FAST)
    assert row["error"] is None and row["timer"] == "cuda_events" and row["peak_kind"] == "measured matmul peak"
