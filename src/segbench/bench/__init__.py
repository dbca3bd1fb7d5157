"""Benchmarks of segmentation models: size (params, MB), FLOPs (GFLOPs/GMACs), latency (ms) with a
stable-median stopping rule, peak memory (MiB) for inference and a training step, end-to-end time per
image, achieved GFLOP/s beside the hardware's fp32 peak, and the environment; one model in this process
with :func:`benchmark_model`, or a sweep with one subprocess per case with :func:`sweep`."""

import importlib
import sys
import types

_HOME = {
    "Case": "case",
    "make_case": "case",
    "measure_end_to_end": "e2e",
    "cpu_fp32_peak": "env",
    "environment_info": "env",
    "measure_matmul_peak": "env",
    "run_isolated": "isolate",
    "LatencyResult": "latency",
    "measure_latency": "latency",
    "median_ci": "latency",
    "peak_memory_mib": "memory",
    "process_peak_rss_mib": "memory",
    "train_step_memory_mib": "memory",
    "benchmark_model": "measure",
    "run_case": "runner",
    "count_flops": "size",
    "count_params": "size",
    "weights_size_mb": "size",
    "sweep": "sweep",
}
"""Where each name below lives: loaded on first use, so that ``import segbench.bench.backends`` (the backend
registry, read by the CLI's parser) does not import torch."""


def __getattr__(name: str):
    if name in _HOME:
        value = getattr(importlib.import_module(f"segbench.bench.{_HOME[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value) -> None:
        if isinstance(value, types.ModuleType) and _HOME.get(name) == name:
            return  # the submodule segbench.bench.sweep: the package's ``sweep`` stays the function
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

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
