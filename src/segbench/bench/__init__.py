"""Benchmarks of segmentation models: size (params, MB), FLOPs (GFLOPs/GMACs), latency (ms),
peak memory (MiB) and the environment, combined per model by :func:`benchmark_model`."""

from segbench.bench.env import environment_info
from segbench.bench.latency import LatencyResult, measure_latency
from segbench.bench.memory import peak_memory_mib
from segbench.bench.runner import benchmark_model
from segbench.bench.size import count_flops, count_params, weights_size_mb

__all__ = [
    "LatencyResult",
    "benchmark_model",
    "count_flops",
    "count_params",
    "environment_info",
    "measure_latency",
    "peak_memory_mib",
    "weights_size_mb",
]
