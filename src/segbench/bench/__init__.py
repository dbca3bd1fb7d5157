"""Benchmarks of segmentation models: size (params, MB), FLOPs (GFLOPs/GMACs), latency (ms) with a
stable-median stopping rule, peak memory (MiB) for inference and a training step, end-to-end time per
image, achieved GFLOP/s beside the hardware's fp32 peak, and the environment; one model in this process
with :func:`benchmark_model`, or a sweep with one subprocess per case with :func:`sweep`."""

import importlib

_WHERE = {
    "Case": "case", "make_case": "case", "measure_end_to_end": "e2e", "cpu_fp32_peak": "env",
    "environment_info": "env", "measure_matmul_peak": "env", "run_isolated": "isolate",
    "LatencyResult": "latency", "measure_latency": "latency", "median_ci": "latency",
    "peak_memory_mib": "memory", "process_peak_rss_mib": "memory", "train_step_memory_mib": "memory",
    "benchmark_model": "runner", "run_case": "runner", "count_flops": "size", "count_params": "size",
    "weights_size_mb": "size", "sweep": "sweep",
}  # fmt: skip
"""Where each public name lives; imported on first use, so that ``segbench hardware`` (which needs only
:mod:`segbench.bench.hardware`) does not pay for torchvision and the backends."""


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(importlib.import_module(f"segbench.bench.{_WHERE[name]}"), name)
        globals()[name] = value  # also over a submodule of the same name (sweep)
        return value
    raise AttributeError(f"module 'segbench.bench' has no attribute {name!r}")


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
