"""Benchmark one model in this process (:func:`benchmark_model`): size, FLOPs, the backend's predictor, peak
memory, latency and the achieved rate beside the device's peak.

:func:`segbench.bench.runner.run_case` wraps it for one case (loading the model, the end-to-end time, the
training step); the row's columns are defined in :mod:`segbench.bench.schema`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from segbench.bench import backends
from segbench.bench.env import cpu_fp32_peak, environment_info, measure_matmul_peak
from segbench.bench.latency import measure_latency
from segbench.bench.memory import peak_memory_mib
from segbench.bench.peak import measure_peaks, native_precisions, theoretical_peaks
from segbench.bench.schema import RESULT_KEYS, empty_row
from segbench.bench.roofline import forward_cost
from segbench.bench.size import count_params, weights_size_mb
from segbench.errors import UserError, first_line

__all__ = ["add_probe", "benchmark_model", "prepare_backend"]

_MATMUL_PEAK: dict[str, dict] = {}


def one_line(exc: BaseException, stage: str) -> str:
    """``exc``'s first line and the stage it happened in: ``"Type: message (during stage)"``."""
    return f"{first_line(exc)} (during {stage})"


def prepare_backend(
    model: nn.Module,
    backend: str,
    example: torch.Tensor,
    device: str = "cpu",
    calibration: list[torch.Tensor] | None = None,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A predictor running ``model`` with ``backend`` (:func:`segbench.bench.backends.prepare`).

    Args:
        model: The eager PyTorch model (on ``device``).
        backend: One of :func:`segbench.bench.backends.backend_names`.
        example: An input ``(N, 3, H, W)`` float32 of the benchmarked shape.
        device: Device to run on.
        calibration: Inputs ``(1, 3, H, W)`` for statically quantised backends.

    Returns:
        A callable taking float32 ``(N, 3, H, W)`` and returning float32 logits ``(N, C, H, W)``.

    Raises:
        UserError: Unknown backend, or one that is unavailable here (missing package, unsupported
            device); the message names the pip extra to install.
    """
    return backends.prepare(model, backend, example, device=device, calibration=calibration)


def _peak(device: torch.device, threads: int | None, measure: bool, precision: str = "fp32") -> dict:
    """Peak of ``device`` in ``precision``: theoretical on CPU (plus the measured fp32 matmul with ``measure``),
    a measured GEMM on CUDA."""
    if device.type == "cuda":
        key = f"{device}:{precision}"
        if key not in _MATMUL_PEAK:
            if precision == "fp32":
                _MATMUL_PEAK[key] = measure_matmul_peak(device)
            else:
                gemm = measure_peaks(str(device), (precision,)).get(precision, {})
                _MATMUL_PEAK[key] = {"peak_gflops": gemm.get("gflop_s"), "peak_kind": "measured matmul peak",
                                     "peak_formula": f"2 n^3 / best time of a {precision} GEMM ({gemm.get('kernel')})"}  # fmt: skip
        return dict(_MATMUL_PEAK[key])
    if precision == "fp32":
        out = cpu_fp32_peak(threads)
    else:
        theory = theoretical_peaks("cpu", threads).get(precision, {})
        out = {"peak_gflops": theory.get("gflop_s"), "peak_kind": "theoretical", "peak_formula": theory.get("formula")}
    if measure:
        key = f"cpu:{torch.get_num_threads()}"
        if key not in _MATMUL_PEAK:
            _MATMUL_PEAK[key] = measure_matmul_peak("cpu")
        out["measured_matmul_gflop_s"] = _MATMUL_PEAK[key]["peak_gflops"]
    return out


def _check_sizes(input_size: tuple[int, int], batch: int, threads: int | None) -> tuple[int, int]:
    height, width = (int(s) for s in input_size)
    if height < 1 or width < 1:
        raise ValueError(f"input_size must be (H, W) with positive entries, got {tuple(input_size)}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    return height, width


def run_benchmark(
    model: nn.Module,
    *,
    input_size: tuple[int, int],
    batch: int,
    device: str,
    threads: int | None,
    in_channels: int,
    backend: str,
    calibration: list[torch.Tensor] | None,
    latency: dict,
    measure_peak: bool,
) -> tuple[dict, Callable | None]:
    """The work of :func:`benchmark_model` (``latency``: keywords of :func:`~segbench.bench.latency.measure_latency`);
    also returns the predictor (None if it could not be made)."""
    height, width = _check_sizes(input_size, batch, threads)
    result = empty_row()
    result.update(backend=backend, batch=batch, input_size=[height, width], device=str(device))
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    predictor, stage = None, ["size"]
    try:
        predictor = _measure(model, result, stage, (batch, in_channels, height, width), device, backend,
                             calibration, latency)  # fmt: skip
        stage[0] = "peak"
        _add_peak(result, torch.device(device), threads, measure_peak)
    except UserError as exc:
        result["error"] = str(exc)
        result["error_kind"] = "user"
    except Exception as exc:  # noqa: BLE001 - one failing model must not stop a sweep
        result["error"] = one_line(exc, stage[0])
        if torch.device(device).type == "cuda" and torch.cuda.is_available():
            torch.cuda.empty_cache()
    finally:
        try:
            result["env"] = environment_info(device)
        except Exception as exc:  # noqa: BLE001 - e.g. a CUDA device string without CUDA
            result["env"] = {"device": str(device)}
            if result["error"] is None:
                result["error"] = one_line(exc, "environment")
        if threads is not None:
            torch.set_num_threads(previous_threads)
    return result, predictor


def _measure(model, result: dict, stage: list[str], shape: tuple[int, int, int, int], device: str, backend: str,
             calibration, latency: dict) -> Callable:  # fmt: skip
    """Size, FLOPs, the backend's predictor, memory and latency into ``result``; ``stage[0]`` names the step
    running (for the error message). Returns the predictor."""
    measures = getattr(model, "size_measures", None)  # a model that is a file (segbench.external) sizes itself
    if measures is not None:
        result.update(measures())
    else:
        result.update(params=count_params(model), size_mb=weights_size_mb(model, torch.float32),
                      size_mb_fp16=weights_size_mb(model, torch.float16))  # fmt: skip
    result["params_m"] = result["params"] / 1e6
    stage[0] = "move to device"
    model.to(device).eval()
    stage[0] = "flops"
    if measures is None:  # FlopCounterMode sees PyTorch operators only, not an ONNX Runtime session
        result.update(forward_cost(model, shape, backend, device))  # FLOPs per image, bytes per call
    stage[0] = f"backend {backend}"
    predictor = prepare_backend(model, backend, torch.randn(shape, device=device), device, calibration)
    if isinstance(predictor, nn.Module):  # backends' predictors are modules, created in train mode
        predictor.eval()
    result["backend_notes"] = getattr(predictor, "notes", None) or None
    stage[0] = "latency"
    on_torch = backends.get_backend(backend).runtime == "torch"
    timer = "auto" if on_torch else "perf_counter"  # the others run outside PyTorch's CUDA stream
    lat = measure_latency(predictor, shape, device=device, timer=timer, **latency)
    result.update({k: v for k, v in lat.to_dict().items() if k in RESULT_KEYS})
    stage[0] = "memory"  # after the timing, whose warm-up has already run the predictor's lazy set-up
    result.update(peak_memory_mib(predictor, shape, device=device, warmup=False))
    return predictor


def _add_peak(result: dict, device: torch.device, threads: int | None, measure_peak: bool) -> None:
    """Achieved GFLOP/s beside the device's peak in the precision the backend computes in, into ``result``."""
    precision = backends.get_backend(result["backend"] or "eager").precision_on(str(device))
    peak = _peak(device, threads, measure_peak, precision)
    if result["gflops"] is None:
        return
    result["achieved_gflop_s"] = result["gflops"] * result["batch"] / (result["latency_ms_p50"] / 1e3)
    native = device.type == "cuda" or native_precisions().get(precision, True)
    label = precision if native else f"{precision} emulated through fp32"
    result.update(peak_precision=precision if native else None, peak_native=native, peak_gflop_s=peak["peak_gflops"],
                  peak_kind=peak["peak_kind"], peak_formula=f"{label}: {peak['peak_formula']}")  # fmt: skip
    if peak["peak_gflops"]:
        result["peak_fraction"] = result["achieved_gflop_s"] / peak["peak_gflops"]
    if "measured_matmul_gflop_s" in peak:
        result["matmul_gflop_s"] = peak["measured_matmul_gflop_s"]


def add_probe(row: dict, probe: dict) -> None:
    """The probe's measured rate in the row's ``peak_precision`` (``probe_gflop_s``, ``probe_fraction``) and the
    probe itself (``peak_probe``), into a result row of :func:`benchmark_model`."""
    row["peak_probe"] = probe
    measured = (probe.get("measured") or {}).get(row.get("peak_precision") or "", {})
    rate = measured.get("gflop_s")
    if rate:
        row["probe_gflop_s"] = rate
        if row.get("achieved_gflop_s"):
            row["probe_fraction"] = row["achieved_gflop_s"] / rate


def benchmark_model(
    model: nn.Module,
    *,
    input_size: tuple[int, int],
    batch: int = 1,
    device: str = "cpu",
    threads: int | None = None,
    warmup: int = 5,
    min_iters: int = 10,
    max_iters: int = 100_000,
    min_time_s: float = 1.0,
    in_channels: int = 3,
    backend: str = "eager",
    calibration: list[torch.Tensor] | None = None,
    rel_ci: float = 0.02,
    budget_s: float | None = None,
    warmup_s: float = 1.0,
    measure_peak: bool = False,
    deadline: float | None = None,
) -> dict:
    """Benchmark one model with one backend, in this process, and return one flat result row.

    Order: size (on the model as given), then the model is moved to ``device`` (in place), FLOPs at
    batch 1 (of the PyTorch model: a backend runs the same multiply-adds), the backend's predictor is
    made (:func:`prepare_backend`), peak memory of one forward at ``batch``, latency at ``batch``
    (:func:`segbench.bench.latency.measure_latency`: warm-up, then calls until the 95% interval of the
    median is within ``rel_ci`` or ``budget_s`` runs out), and achieved GFLOP/s beside the device's
    fp32 peak. If any step fails (e.g. ``RuntimeError``, CUDA out of memory, a backend that is not
    installed), the error is recorded in ``error``; the keys not measured stay None, so a sweep can go
    on. For isolation between models use :func:`sweep` (one subprocess per case).

    Args:
        model: Module whose forward takes one ``(N, C, H, W)`` tensor and returns logits.
        input_size: ``(H, W)`` of the input, pixels.
        batch: Batch size for latency and memory.
        device: Device to run on, e.g. ``"cpu"``, ``"cuda"``.
        threads: If given, ``torch.set_num_threads(threads)`` for the benchmark (the previous value
            is restored afterwards).
        warmup: Minimum untimed calls before timing.
        min_iters: Minimum number of timed calls.
        max_iters: Maximum number of timed calls.
        min_time_s: Minimum seconds of timing.
        in_channels: Channels of the input image.
        backend: How to run the model (:func:`segbench.bench.backends.backend_names`; default ``"eager"``).
        calibration: Calibration inputs for statically quantised backends.
        rel_ci: Relative half-width of the median's 95% interval at which timing stops (0.02 = 2%).
        budget_s: Maximum seconds of timing; None: ``min_time_s`` (timing stops after ``min_time_s``
            whether or not the interval is within ``rel_ci``; ``converged`` says whether it was).
            ``segbench benchmark`` passes its ``--budget`` (default 30 s).
        warmup_s: Minimum seconds of warm-up.
        measure_peak: Also measure a large fp32 matmul on CPU (``matmul_gflop_s``); CUDA always
            uses the measured peak.
        deadline: ``time.time()`` by which timing ends, whatever the interval (``budget_cut`` says when it
            did); None: none.

    Returns:
        Dict with ``backend``, ``backend_notes``, ``params`` (int), ``params_m`` (millions),
        ``size_mb`` / ``size_mb_fp16`` (safetensors size in MB = 10**6 bytes, fp32 / fp16 weights),
        ``gflops`` / ``gmacs`` (per image, at ``input_size``, batch 1; 1 multiply-add = 2 FLOPs),
        ``latency_ms_p50``, ``latency_ms_p90``, ``latency_ms_mean``, ``latency_ms_std``,
        ``latency_ms_ci_low`` / ``latency_ms_ci_high`` (95% interval of the median), ``ci_rel``,
        ``converged``, ``budget_cut``, ``iters``, ``timer`` (ms per batch), ``throughput_img_s``, ``batch``,
        ``input_size`` (``[H, W]``), ``device``, ``memory_mib`` (MiB = 2**20 bytes),
        ``memory_reserved_mib`` (CUDA only, else None), ``memory_kind`` (``"cuda_peak_allocated"`` or
        ``"cpu_peak_rss_increase"``), ``achieved_gflop_s`` (``gflops x batch / p50 s``),
        ``peak_gflop_s``, ``peak_fraction``, ``peak_kind`` (``"theoretical"`` or ``"measured matmul
        peak"``), ``peak_formula``, ``error`` (None on success, else one line ``"Type: message (during
        stage)"``, or the message of a :class:`UserError` with ``error_kind = "user"``) and ``env``
        (see :func:`segbench.bench.env.environment_info`).

    Raises:
        ValueError: If ``input_size``, ``batch`` or ``threads`` is not positive. Failures of the
            model itself are recorded in ``error``, not raised.
    """
    latency = {"warmup": warmup, "warmup_s": warmup_s, "min_iters": min_iters, "max_iters": max_iters,
               "min_time_s": min_time_s, "budget_s": min_time_s if budget_s is None else budget_s,
               "rel_ci": rel_ci, "deadline": deadline}  # fmt: skip
    row, _ = run_benchmark(
        model, input_size=input_size, batch=batch, device=device, threads=threads, in_channels=in_channels,
        backend=backend, calibration=calibration, latency=latency, measure_peak=measure_peak,
    )  # fmt: skip
    return row
