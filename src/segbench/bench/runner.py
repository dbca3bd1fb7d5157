"""Benchmark one model: size, FLOPs, latency, peak memory and environment in one flat dict (one row)."""

from __future__ import annotations

import torch
from torch import nn

from segbench.bench.env import environment_info
from segbench.bench.latency import measure_latency
from segbench.bench.memory import peak_memory_mib
from segbench.bench.size import count_flops, count_params, weights_size_mb

__all__ = ["benchmark_model"]

_RESULT_KEYS = (
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
    "memory_reserved_mib",
    "memory_kind",
    "error",
    "env",
)


def _one_line(exc: BaseException, stage: str) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    message = lines[0] if lines else ""
    if len(message) > 300:
        message = message[:297] + "..."
    return f"{type(exc).__name__}: {message} (during {stage})"


def benchmark_model(
    model: nn.Module,
    *,
    input_size: tuple[int, int],
    batch: int = 1,
    device: str = "cpu",
    threads: int | None = None,
    warmup: int = 5,
    min_iters: int = 10,
    max_iters: int = 200,
    min_time_s: float = 2.0,
    in_channels: int = 3,
) -> dict:
    """Benchmark one model and return one flat result row.

    Order: size (on the model as given), then the model is moved to ``device`` (in place), FLOPs at
    batch 1, peak memory of one forward at ``batch``, then latency at ``batch``. If any step fails
    (e.g. ``RuntimeError``, CUDA out-of-memory, a model that cannot run at this size), the exception
    is caught and recorded in ``error``; the keys not measured stay None, so a sweep can go on.

    Args:
        model: Module whose forward takes one ``(N, C, H, W)`` tensor and returns a tensor.
        input_size: ``(H, W)`` of the input, pixels.
        batch: Batch size for latency and memory.
        device: Device to run on, e.g. ``"cpu"``, ``"cuda"``.
        threads: If given, ``torch.set_num_threads(threads)`` for the benchmark (the previous value
            is restored afterwards).
        warmup: Untimed forward passes before timing.
        min_iters: Minimum number of timed forward passes.
        max_iters: Maximum number of timed forward passes.
        min_time_s: Minimum total timing duration, seconds.
        in_channels: Channels of the input image.

    Returns:
        Dict with ``params`` (int), ``params_m`` (millions), ``size_mb`` / ``size_mb_fp16`` (safetensors
        size in MB = 10**6 bytes, fp32 / fp16 weights), ``gflops`` / ``gmacs`` (per image, at
        ``input_size``, batch 1; 1 multiply-add = 2 FLOPs), ``latency_ms_p50``, ``latency_ms_p90``,
        ``latency_ms_mean``, ``latency_ms_std`` (ms per batch), ``throughput_img_s``, ``iters``,
        ``batch``, ``input_size`` (``[H, W]``), ``device``, ``memory_mib`` (MiB = 2**20 bytes),
        ``memory_reserved_mib`` (CUDA only, else None), ``memory_kind``
        (``"cuda_peak_allocated"`` or ``"cpu_peak_rss_increase"``), ``error`` (None on success, else
        one line ``"Type: message (during stage)"``) and ``env`` (see
        :func:`segbench.bench.env.environment_info`).

    Raises:
        ValueError: If ``input_size``, ``batch`` or ``threads`` is not positive. Failures of the
            model itself are recorded in ``error``, not raised.
    """
    height, width = (int(s) for s in input_size)
    if height < 1 or width < 1:
        raise ValueError(f"input_size must be (H, W) with positive entries, got {tuple(input_size)}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")

    result: dict = dict.fromkeys(_RESULT_KEYS)
    result.update(batch=batch, input_size=[height, width], device=str(device))
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    stage = "size"
    try:
        params = count_params(model)
        result.update(
            params=params,
            params_m=params / 1e6,
            size_mb=weights_size_mb(model, torch.float32),
            size_mb_fp16=weights_size_mb(model, torch.float16),
        )
        stage = "move to device"
        model.to(device)
        stage = "flops"
        result.update(count_flops(model, (1, in_channels, height, width)))
        stage = "memory"
        shape = (batch, in_channels, height, width)
        result.update(peak_memory_mib(model, shape, device=device))
        stage = "latency"
        latency = measure_latency(
            model,
            shape,
            device=device,
            warmup=warmup,
            min_iters=min_iters,
            max_iters=max_iters,
            min_time_s=min_time_s,
        )
        result.update(latency.to_dict())
    except Exception as exc:  # noqa: BLE001 - one failing model must not stop a sweep
        result["error"] = _one_line(exc, stage)
        if torch.device(device).type == "cuda" and torch.cuda.is_available():
            torch.cuda.empty_cache()
    finally:
        try:
            result["env"] = environment_info(device)
        except Exception as exc:  # noqa: BLE001 - e.g. a CUDA device string without CUDA
            result["env"] = {"device": str(device)}
            if result["error"] is None:
                result["error"] = _one_line(exc, "environment")
        if threads is not None:
            torch.set_num_threads(previous_threads)
    return result
