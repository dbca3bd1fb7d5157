"""Benchmarks of segmentation models: size (params, MB), FLOPs (GFLOPs/GMACs), latency (ms) with a
stable-median stopping rule, peak memory (MiB) for inference and a training step, end-to-end time per
image, achieved GFLOP/s beside the hardware's fp32 peak, and the environment; one model in this process
with :func:`benchmark_model`, or a sweep with one subprocess per case with :func:`sweep`."""

from segbench.bench.case import Case, make_case
from segbench.bench.e2e import measure_end_to_end
from segbench.bench.env import cpu_fp32_peak, environment_info, measure_matmul_peak
from segbench.bench.isolate import run_isolated
from segbench.bench.latency import LatencyResult, measure_latency, median_ci
from segbench.bench.memory import peak_memory_mib, process_peak_rss_mib, train_step_memory_mib
from segbench.bench.runner import benchmark_model, run_case
from segbench.bench.size import count_flops, count_params, weights_size_mb
from segbench.bench.sweep import sweep

__all__ = [
    "Case",
    "LatencyResult",
    "benchmark_model",
    "count_flops",
    "count_params",
    "cpu_fp32_peak",
    "environment_info",
    "make_case",
    "measure_end_to_end",
    "measure_latency",
    "measure_matmul_peak",
    "median_ci",
    "peak_memory_mib",
    "process_peak_rss_mib",
    "run_case",
    "run_isolated",
    "sweep",
    "train_step_memory_mib",
    "weights_size_mb",
]
