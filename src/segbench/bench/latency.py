"""Inference latency: warm up, then time individual forward passes and report median / p90 in ms."""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import asdict, dataclass

import torch
from torch import nn

__all__ = ["LatencyResult", "measure_latency"]


@dataclass
class LatencyResult:
    """Latency statistics of one model at one input shape.

    Attributes:
        latency_ms_p50: Median time per forward pass (whole batch), ms.
        latency_ms_p90: 90th percentile (linear interpolation), ms.
        latency_ms_mean: Mean, ms.
        latency_ms_std: Sample standard deviation (0 for a single iteration), ms.
        throughput_img_s: ``batch / median seconds``, images per second.
        iters: Number of timed iterations.
        batch: Batch size.
    """

    latency_ms_p50: float
    latency_ms_p90: float
    latency_ms_mean: float
    latency_ms_std: float
    throughput_img_s: float
    iters: int
    batch: int

    def to_dict(self) -> dict:
        """Return the fields as a plain dict."""
        return asdict(self)


def _percentile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default) of an ascending list, q in [0, 100]."""
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def measure_latency(
    model: nn.Module,
    input_shape: tuple[int, int, int, int],
    device: str | torch.device = "cpu",
    warmup: int = 5,
    min_iters: int = 10,
    max_iters: int = 200,
    min_time_s: float = 2.0,
    dtype: torch.dtype = torch.float32,
    warmup_s: float = 1.0,
) -> LatencyResult:
    """Time the forward pass of ``model`` on a random input.

    The model is moved to ``device`` (in place) and put in eval mode (its mode is restored
    afterwards); everything runs under ``torch.inference_mode()``. A random input of ``input_shape``
    is created once on the device. After at least ``warmup`` untimed calls and ``warmup_s`` seconds of
    them (the first model timed in a process needs about a second of calls before its times settle on
    CPU: thread pool and allocator warm-up), each call is timed on its own with
    ``time.perf_counter``; on CUDA ``torch.cuda.synchronize()`` is called before and after every
    timed call so the time covers the GPU work. Timing stops once at least ``min_iters`` calls and
    ``min_time_s`` seconds are done, or after ``max_iters`` calls.

    Args:
        model: Module whose forward takes one ``(N, C, H, W)`` tensor and returns a tensor.
        input_shape: ``(N, C, H, W)``; ``N`` is the batch.
        device: Device to run on, e.g. ``"cpu"``, ``"cuda"``, ``"cuda:1"``.
        warmup: Minimum number of untimed calls before timing.
        warmup_s: Minimum seconds of untimed calls before timing.
        min_iters: Minimum number of timed calls.
        max_iters: Maximum number of timed calls.
        min_time_s: Minimum total timing duration in seconds.
        dtype: Dtype of the input. The model must already hold floating weights of this dtype
            (cast it first, e.g. ``model.half()``).

    Returns:
        A :class:`LatencyResult` (times in ms, throughput in images/s).

    Raises:
        ValueError: If ``input_shape`` is not 4 positive ints, ``min_iters`` < 1,
            ``max_iters`` < ``min_iters``, or the model's weights are not of ``dtype``.
        Exception: Whatever the model's forward raises (e.g. ``torch.cuda.OutOfMemoryError``).
    """
    input_shape = tuple(int(s) for s in input_shape)
    if len(input_shape) != 4 or min(input_shape) < 1:
        raise ValueError(f"input_shape must be (N, C, H, W) with positive entries, got {input_shape}")
    if min_iters < 1 or max_iters < min_iters:
        raise ValueError(f"need 1 <= min_iters <= max_iters, got min_iters={min_iters}, max_iters={max_iters}")
    param_dtypes = {p.dtype for p in model.parameters() if p.is_floating_point()}
    if param_dtypes and param_dtypes != {dtype}:
        names = ", ".join(sorted(str(d) for d in param_dtypes))
        raise ValueError(f"model weights are {names} but dtype={dtype}; cast the model first (model.to({dtype}))")

    device = torch.device(device)
    is_cuda = device.type == "cuda"

    def sync() -> None:
        if is_cuda:
            torch.cuda.synchronize(device)

    was_training = model.training
    model.to(device).eval()
    times_s: list[float] = []
    try:
        with torch.inference_mode():
            x = torch.randn(input_shape, device=device, dtype=dtype)
            warm_start, warm_calls = time.perf_counter(), 0
            while warm_calls < warmup or time.perf_counter() - warm_start < warmup_s:
                model(x)
                sync()
                warm_calls += 1
            start = time.perf_counter()
            while len(times_s) < max_iters:
                sync()
                t0 = time.perf_counter()
                model(x)
                sync()
                times_s.append(time.perf_counter() - t0)
                if len(times_s) >= min_iters and time.perf_counter() - start >= min_time_s:
                    break
    finally:
        model.train(was_training)

    ms = sorted(t * 1e3 for t in times_s)
    p50 = _percentile(ms, 50)
    batch = input_shape[0]
    return LatencyResult(
        latency_ms_p50=p50,
        latency_ms_p90=_percentile(ms, 90),
        latency_ms_mean=statistics.fmean(ms),
        latency_ms_std=statistics.stdev(ms) if len(ms) > 1 else 0.0,
        throughput_img_s=batch / (p50 / 1e3) if p50 > 0 else math.inf,
        iters=len(ms),
        batch=batch,
    )
