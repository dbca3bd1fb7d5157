"""Benchmark runs: one model in this process (:func:`benchmark_model`), one case of a sweep in a fresh
subprocess (:func:`run_isolated`), and a sweep over models x backends x sizes x batches (:func:`sweep`).

A *case* is one (model, backend, input size, batch) with its settings, a plain JSON-able dict (see
:func:`make_case`). :func:`run_case` measures a case in the current process; :func:`run_isolated`
runs it in ``python -m segbench.bench.worker``, so one model's memory, caches, thread pools and lazy
initialisation cannot change the next model's figures, and a crash, out-of-memory kill, timeout or bad
input becomes a row holding ``error`` while the sweep goes on.
"""

from __future__ import annotations

import copy
import importlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

from segbench.bench.env import cpu_busy_pct, cpu_fp32_peak, environment_info, measure_matmul_peak
from segbench.bench.latency import measure_end_to_end, measure_latency
from segbench.bench.memory import current_rss_mib, peak_memory_mib, process_peak_rss_mib, train_step_memory_mib
from segbench.bench.size import count_flops, count_params, weights_size_mb
from segbench.errors import UserError, first_line

__all__ = [
    "available_backends",
    "benchmark_model",
    "make_case",
    "prepare_backend",
    "run_case",
    "run_isolated",
    "sweep",
]

_RESULT_KEYS = (
    "backend",
    "backend_notes",
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
    "latency_ms_ci_low",
    "latency_ms_ci_high",
    "ci_rel",
    "converged",
    "throughput_img_s",
    "iters",
    "timer",
    "batch",
    "input_size",
    "device",
    "memory_mib",
    "memory_reserved_mib",
    "memory_kind",
    "achieved_gflop_s",
    "peak_gflop_s",
    "peak_fraction",
    "peak_kind",
    "peak_formula",
    "error",
    "env",
)

# Backends that run outside PyTorch's CUDA stream: time them with perf_counter + synchronize.
_FOREIGN_BACKENDS = ("onnxruntime", "onnxruntime_int8", "openvino")
_MATMUL_PEAK: dict[str, dict] = {}


def _one_line(exc: BaseException, stage: str) -> str:
    return f"{first_line(exc)} (during {stage})"


def available_backends() -> tuple[str, ...]:
    """Backend names ``segbench.bench.backends.BACKENDS`` offers (only ``("eager",)`` without that module)."""
    try:
        return tuple(importlib.import_module("segbench.bench.backends").BACKENDS)
    except ImportError:
        return ("eager",)


def prepare_backend(
    model: nn.Module,
    backend: str,
    example: torch.Tensor,
    device: str = "cpu",
    calibration: list[torch.Tensor] | None = None,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A predictor running ``model`` with ``backend`` (via ``segbench.bench.backends.prepare``).

    Args:
        model: The eager PyTorch model (on ``device``).
        backend: One of :func:`available_backends`.
        example: An input ``(N, 3, H, W)`` float32 of the benchmarked shape.
        device: Device to run on.
        calibration: Inputs ``(1, 3, H, W)`` for statically quantised backends.

    Returns:
        A callable taking float32 ``(N, 3, H, W)`` and returning float32 logits ``(N, C, H, W)``; the
        model itself for ``"eager"`` when the backends module is absent.

    Raises:
        UserError: Unknown backend, or one that is unavailable here (missing package, unsupported
            device); the message names the pip extra to install.
    """
    try:
        backends = importlib.import_module("segbench.bench.backends")
    except ImportError:
        if backend == "eager":
            return model
        raise UserError(
            f"--backend {backend}: this segbench has no backends module; only 'eager' is available"
        ) from None
    if backend not in backends.BACKENDS:
        raise UserError(f"--backend {backend}: unknown backend; choose from {', '.join(backends.BACKENDS)}")
    return backends.prepare(model, backend, example, device=device, calibration=calibration)


def _peak(device: torch.device, threads: int | None, measure: bool) -> dict:
    """fp32 peak of ``device``: theoretical on CPU (plus measured with ``measure``), measured on CUDA."""
    if device.type == "cuda":
        key = str(device)
        if key not in _MATMUL_PEAK:
            _MATMUL_PEAK[key] = measure_matmul_peak(device)
        return _MATMUL_PEAK[key]
    out = cpu_fp32_peak(threads)
    if measure:
        key = f"cpu:{torch.get_num_threads()}"
        if key not in _MATMUL_PEAK:
            _MATMUL_PEAK[key] = measure_matmul_peak("cpu")
        out["measured_matmul_gflop_s"] = _MATMUL_PEAK[key]["peak_gflops"]
    return out


def _benchmark(
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
    """The work of :func:`benchmark_model`; also returns the predictor (None if it could not be made)."""
    height, width = (int(s) for s in input_size)
    if height < 1 or width < 1:
        raise ValueError(f"input_size must be (H, W) with positive entries, got {tuple(input_size)}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")

    result: dict = dict.fromkeys(_RESULT_KEYS)
    result.update(backend=backend, batch=batch, input_size=[height, width], device=str(device))
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    predictor = None
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
        model.to(device).eval()
        stage = "flops"
        result.update(count_flops(model, (1, in_channels, height, width)))
        shape = (batch, in_channels, height, width)
        stage = f"backend {backend}"
        predictor = prepare_backend(model, backend, torch.randn(shape, device=device), device, calibration)
        if isinstance(predictor, nn.Module):  # backends' predictors are modules, created in train mode
            predictor.eval()
        result["backend_notes"] = getattr(predictor, "notes", None) or None
        stage = "memory"
        result.update(peak_memory_mib(predictor, shape, device=device))
        stage = "latency"
        timer = "perf_counter" if backend in _FOREIGN_BACKENDS else "auto"
        lat = measure_latency(predictor, shape, device=device, timer=timer, **latency)
        result.update({k: v for k, v in lat.to_dict().items() if k in _RESULT_KEYS})
        stage = "peak"
        peak = _peak(torch.device(device), threads, measure_peak)
        result["achieved_gflop_s"] = result["gflops"] * batch / (lat.latency_ms_p50 / 1e3)
        result.update(peak_gflop_s=peak["peak_gflops"], peak_kind=peak["peak_kind"], peak_formula=peak["peak_formula"])
        if peak["peak_gflops"]:
            result["peak_fraction"] = result["achieved_gflop_s"] / peak["peak_gflops"]
        if "measured_matmul_gflop_s" in peak:
            result["matmul_gflop_s"] = peak["measured_matmul_gflop_s"]
    except UserError as exc:
        result["error"] = str(exc)
        result["error_kind"] = "user"
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
    return result, predictor


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
        backend: How to run the model (``segbench.bench.backends.BACKENDS``; default ``"eager"``).
        calibration: Calibration inputs for statically quantised backends.
        rel_ci: Relative half-width of the median's 95% interval at which timing stops (0.02 = 2%).
        budget_s: Maximum seconds of timing; None: ``min_time_s`` (timing stops after ``min_time_s``
            whether or not the interval is within ``rel_ci``; ``converged`` says whether it was).
            ``segbench benchmark`` passes its ``--budget`` (default 30 s).
        warmup_s: Minimum seconds of warm-up.
        measure_peak: Also measure a large fp32 matmul on CPU (``matmul_gflop_s``); CUDA always
            uses the measured peak.

    Returns:
        Dict with ``backend``, ``backend_notes``, ``params`` (int), ``params_m`` (millions),
        ``size_mb`` / ``size_mb_fp16`` (safetensors size in MB = 10**6 bytes, fp32 / fp16 weights),
        ``gflops`` / ``gmacs`` (per image, at ``input_size``, batch 1; 1 multiply-add = 2 FLOPs),
        ``latency_ms_p50``, ``latency_ms_p90``, ``latency_ms_mean``, ``latency_ms_std``,
        ``latency_ms_ci_low`` / ``latency_ms_ci_high`` (95% interval of the median), ``ci_rel``,
        ``converged``, ``iters``, ``timer`` (ms per batch), ``throughput_img_s``, ``batch``,
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
               "rel_ci": rel_ci}  # fmt: skip
    row, _ = _benchmark(
        model, input_size=input_size, batch=batch, device=device, threads=threads, in_channels=in_channels,
        backend=backend, calibration=calibration, latency=latency, measure_peak=measure_peak,
    )  # fmt: skip
    return row


def make_case(
    model: str,
    *,
    backend: str = "eager",
    batch: int = 1,
    input_size: tuple[int, int] = (520, 520),
    device: str = "cpu",
    threads: int | None = None,
    weights: str | None = None,
    latency: dict | None = None,
    data: str | None = None,
    e2e: bool = True,
    train_step: bool = True,
    cudnn_benchmark: bool = False,
    measure_peak: bool = False,
) -> dict:
    """One benchmark case as a JSON-able dict, the input of :func:`run_case` and :func:`run_isolated`.

    Args:
        model: Model spec (``ARCH``, ``ARCH.TAG`` or a weights file); a bare ``ARCH`` without
            ``weights`` gets random weights (speed and size do not depend on them).
        backend: Backend name.
        batch: Batch size.
        input_size: ``(H, W)``.
        device: ``"cpu"`` or ``"cuda[:i]"``.
        threads: torch CPU threads (None: torch's default).
        weights: Weights for a bare ``ARCH``.
        latency: Keyword arguments for :func:`segbench.bench.latency.measure_latency` (``warmup``,
            ``warmup_s``, ``min_iters``, ``max_iters``, ``min_time_s``, ``budget_s``, ``rel_ci``).
        data: Images for the end-to-end time (a dataset folder or images folder); None: segbench's
            CamVid sample.
        e2e: Measure the end-to-end time per image (batch 1 cases only).
        train_step: Measure the memory of one training step (``eager`` backend only).
        cudnn_benchmark: Value of ``torch.backends.cudnn.benchmark`` in the worker.
        measure_peak: Also measure a large matmul on CPU.
    """
    return {
        "model": model, "backend": backend, "batch": int(batch), "input_size": [int(s) for s in input_size],
        "device": device, "threads": threads, "weights": weights, "latency": dict(latency or {}),
        "data": None if data is None else str(data), "e2e": bool(e2e), "train_step": bool(train_step),
        "cudnn_benchmark": bool(cudnn_benchmark), "measure_peak": bool(measure_peak),
    }  # fmt: skip


def _base_row(case: dict) -> dict:
    return {"model": case["model"], "weights": case.get("weights"), "backend": case.get("backend", "eager"),
            "batch": case.get("batch"), "input_size": case.get("input_size"), "device": case.get("device"),
            "error": None}  # fmt: skip


def _e2e_inputs(data: str | None, info, limit: int = 8) -> tuple[list[Path], list | None]:
    """Image paths (at most ``limit``) and, when the data's classes are the model's, their label maps."""
    from segbench.data.datasets import open_dataset, sample_dir

    dataset = open_dataset(data or sample_dir(), "val")
    n = min(limit, len(dataset))
    paths = [dataset.pairs[i][0] for i in range(n)]
    if dataset.labelled and list(dataset.class_set.names) == list(info.class_names):
        items = [dataset.load(i) for i in range(n)]
        return paths, [it["mask"] for it in items]
    return paths, None


def _calibration(paths: list[Path], info, size: tuple[int, int]) -> list[torch.Tensor]:
    import torch.nn.functional as F

    from segbench.data.io import read_image
    from segbench.data.transforms import preprocess

    return [F.interpolate(preprocess(read_image(p), info.mean, info.std), size=size, mode="bilinear",
                          align_corners=False) for p in paths]  # fmt: skip


def run_case(case: dict) -> dict:
    """Measure one case (see :func:`make_case`) in this process and return its row.

    Steps: set threads and ``cudnn.benchmark``; load the model; :func:`benchmark_model`'s measurements
    with the case's backend (statically quantised backends are calibrated on the data's images at
    the case's size); for batch-1 cases the end-to-end time per image on the data's images
    (``e2e_*``, and the mIoU on them as ``sample_miou`` when the data's classes are the model's);
    ``peak_rss_mib``, this process's peak RSS so far (``ru_maxrss``; ``rss_before_model_mib`` is the RSS
    before the model was loaded: Python, torch and segbench); last, for the ``eager`` backend,
    the memory of one training step at batch ``max(batch, 2)`` (``train_*``; it changes the weights,
    which is why it comes last).

    Returns:
        The row; failures are recorded in ``error`` (``error_kind = "user"`` for bad input),
        ``e2e_error`` or ``train_error``, never raised.
    """
    from segbench.models import load_model

    row = _base_row(case)
    row["rss_before_model_mib"] = current_rss_mib()
    threads = case.get("threads")
    if threads:
        torch.set_num_threads(int(threads))
    torch.backends.cudnn.benchmark = bool(case.get("cudnn_benchmark"))
    spec, weights, backend = case["model"], case.get("weights"), case.get("backend", "eager")
    device, batch = case.get("device", "cpu"), int(case.get("batch", 1))
    size = tuple(case.get("input_size", (520, 520)))
    try:
        bare = "." not in spec and not Path(spec).exists()
        loaded = load_model(spec, weights=weights or ("none" if bare else None))
    except UserError as exc:
        row.update(error=str(exc), error_kind="user")
        return row
    except Exception as exc:  # noqa: BLE001
        row["error"] = _one_line(exc, "load model")
        return row
    info = loaded.info
    loaded.model.eval()
    row.update(model=info.name, weights=info.weights, num_classes=info.num_classes)

    paths, masks, data_error = [], None, None
    needs_images = (case.get("e2e", True) and batch == 1) or backend.endswith("int8")
    if needs_images:
        try:
            paths, masks = _e2e_inputs(case.get("data"), info)
        except UserError as exc:
            data_error = str(exc)
    calibration = None
    if backend.endswith("int8"):
        if not paths:
            row.update(error=f"--backend {backend}: needs calibration images ({data_error or 'none found'})",
                       error_kind="user")  # fmt: skip
            return row
        calibration = _calibration(paths, info, size)

    if not str(device).startswith("cuda"):
        row["cpu_busy_before_pct"] = cpu_busy_pct()  # other processes' load, measured while this one sleeps
    bench, predictor = _benchmark(
        loaded.model, input_size=size, batch=batch, device=device, threads=threads, in_channels=3,
        backend=backend, calibration=calibration, latency=case.get("latency") or {},
        measure_peak=bool(case.get("measure_peak")),
    )  # fmt: skip
    row.update(bench)
    if row["error"] is None and case.get("e2e", True) and batch == 1:
        if data_error:
            row["e2e_error"] = data_error
        else:
            try:
                e2e = measure_end_to_end(
                    predictor, paths, info.mean, info.std, input_size=size, device=device,
                    min_time_s=float((case.get("latency") or {}).get("min_time_s", 1.0)),
                    num_classes=info.num_classes, masks=masks,
                )  # fmt: skip
                row["sample_miou"] = e2e.pop("miou", None)
                row["e2e_data"] = case.get("data") or "segbench CamVid sample"
                row.update(e2e)
            except Exception as exc:  # noqa: BLE001
                row["e2e_error"] = _one_line(exc, "end to end")
    row["peak_rss_mib"] = process_peak_rss_mib()
    if row["error"] is None and case.get("train_step", True) and backend == "eager":
        train_shape = (max(batch, 2), 3, *size)
        try:
            row.update(train_step_memory_mib(loaded.model, train_shape, info.num_classes, device=device))
        except Exception as exc:  # noqa: BLE001
            row["train_error"] = _one_line(exc, "training step")
        finally:
            if torch.device(device).type == "cuda" and torch.cuda.is_available():
                torch.cuda.empty_cache()
    return row


def _tail(path: Path, limit: int = 300) -> str:
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    last = lines[-1] if lines else ""
    return last if len(last) <= limit else last[: limit - 3] + "..."


def run_isolated(
    case: dict,
    timeout_s: float = 600.0,
    python: str | None = None,
    command: Sequence[str] | None = None,
    poll_s: float = 0.05,
) -> dict:
    """Run one case in a fresh ``python -m segbench.bench.worker`` subprocess and return its row.

    The child gets the case as a JSON file and writes its row to another (atomically); with
    ``threads`` set, ``OMP_NUM_THREADS`` and ``MKL_NUM_THREADS`` are set for it too. The child runs in
    its own session; past ``timeout_s`` its whole process group is killed. The worker reports
    ``peak_rss_mib_total``, its peak resident set size over its whole life (imports and the training step
    included; :func:`~segbench.bench.memory.process_peak_rss_mib`). Not ``os.wait4``'s ``ru_maxrss``:
    Linux carries the parent's high-water mark over ``exec`` into it, so it is never below the size of
    the process that started the worker.

    Args:
        case: A case from :func:`make_case`.
        timeout_s: Seconds before the child is killed.
        python: Interpreter for the child (default ``sys.executable``).
        command: Replaces ``[python, "-m", "segbench.bench.worker"]`` (tests); the case and result
            paths are appended.
        poll_s: Seconds between checks of the child.

    Returns:
        The child's row plus ``peak_rss_mib_total``, ``worker_exit`` and ``worker_s``; if the child
        wrote no row, the case's base row with ``error`` saying why (timeout, killed by a signal, exit
        code and the last line of its output).
    """
    base = _base_row(case)
    with tempfile.TemporaryDirectory(prefix="segbench-case-") as tmp:
        case_path, out_path, log_path = Path(tmp, "case.json"), Path(tmp, "row.json"), Path(tmp, "log.txt")
        case_path.write_text(json.dumps(case))
        argv = list(command or [python or sys.executable, "-m", "segbench.bench.worker"]) + [
            str(case_path),
            str(out_path),
        ]
        env = dict(os.environ)
        if case.get("threads"):
            env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(case["threads"])
        t0 = time.perf_counter()
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                    start_new_session=True)  # fmt: skip
        timed_out, status = False, 0
        try:
            while True:
                pid, status = os.waitpid(proc.pid, os.WNOHANG)
                if pid:
                    break
                if time.perf_counter() - t0 > timeout_s:
                    timed_out = True
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    _, status = os.waitpid(proc.pid, 0)
                    break
                time.sleep(poll_s)
        except BaseException:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
                os.wait4(proc.pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
            proc.returncode = -9
            raise
        code = os.waitstatus_to_exitcode(status)
        proc.returncode = code
        elapsed = time.perf_counter() - t0
        row = None
        if out_path.is_file() and not timed_out:
            try:
                row = json.loads(out_path.read_text())
            except (OSError, json.JSONDecodeError):
                row = None
        if row is None:
            row = base
            if timed_out:
                row["error"] = f"timeout: no result after {timeout_s:g} s; the worker was killed"
            elif code < 0:
                name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
                hint = " (out of memory?)" if -code == signal.SIGKILL else ""
                row["error"] = f"worker killed by signal {name}{hint}: {_tail(log_path)}".rstrip(": ")
            else:
                row["error"] = f"worker exited with code {code} without a result: {_tail(log_path)}".rstrip(": ")
        row["worker_exit"] = code
        row["worker_s"] = elapsed
    return row


def sweep(
    models: Sequence[str],
    *,
    backends: Sequence[str] = ("eager",),
    batches: Sequence[int] = (1,),
    sizes: Sequence[tuple[int, int]] = ((520, 520),),
    isolate: bool = True,
    timeout_s: float = 600.0,
    on_row: Callable[[dict, int, int], None] | None = None,
    **case_kwargs,
) -> list[dict]:
    """Benchmark every (model, backend, size, batch) and return one row per case, in that order.

    Each case runs in a fresh subprocess (:func:`run_isolated`) unless ``isolate`` is False (then in
    this process, one after the other: later models can be affected by earlier ones; for debugging).
    A failing case becomes a row with ``error`` and the sweep goes on.

    Args:
        models: Model specs.
        backends: Backend names.
        batches: Batch sizes.
        sizes: ``(H, W)`` input sizes.
        isolate: One subprocess per case.
        timeout_s: Per-case limit in seconds (isolated cases only).
        on_row: Called as ``on_row(row, index, total)`` after each case (progress, partial saves).
        **case_kwargs: Passed to :func:`make_case` (``device``, ``threads``, ``weights``, ``latency``,
            ``data``, ``e2e``, ``train_step``, ``cudnn_benchmark``, ``measure_peak``).

    Returns:
        The rows.
    """
    cases = [make_case(m, backend=b, batch=n, input_size=s, **case_kwargs)
             for m in models for b in backends for s in sizes for n in batches]  # fmt: skip
    rows = []
    for i, case in enumerate(cases):
        if isolate:
            row = run_isolated(case, timeout_s=timeout_s)
        else:
            row = run_case(copy.deepcopy(case))
            row["peak_rss_kind"] = "ru_maxrss of this process (not isolated): includes earlier cases"
        rows.append(row)
        if on_row is not None:
            on_row(row, i, len(cases))
    return rows


def parse_sizes(values: Sequence[str | int]) -> list[tuple[int, int]]:
    """Input sizes from the command line: ``HxW`` values (``360x480 520x520``), or the older form of two
    integers ``H W`` (one size).

    Raises:
        UserError: Anything else (the message shows the accepted forms).
    """
    values = [str(v).strip().lower() for v in values]
    if len(values) == 2 and all(v.isdigit() for v in values):
        sizes = [(int(values[0]), int(values[1]))]
    else:
        sizes = []
        for v in values:
            h, sep, w = v.partition("x")
            if not (sep and h.isdigit() and w.isdigit()):
                raise UserError(f"--size {v}: expected HxW such as 360x480 (several allowed), or two integers H W")
            sizes.append((int(h), int(w)))
    for h, w in sizes:
        if h < 1 or w < 1:
            raise UserError(f"--size {h}x{w}: height and width must be positive")
    return sizes


def check_specs(models: Sequence[str]) -> dict[str, str]:
    """Check model specs without building them: ``{spec: error}`` for each unknown architecture or
    missing weights file (a file's content is checked by the worker when it loads it)."""
    from segbench.models import MODELS

    errors = {}
    for spec in models:
        if Path(spec).exists():
            continue
        if spec.endswith((".safetensors", ".pt", ".pth")):
            errors[spec] = f"{spec}: no such weights file"
            continue
        try:
            MODELS.get(spec.partition(".")[0])
        except UserError as exc:
            errors[spec] = str(exc)
    return errors


def _f(v, spec: str = ".1f") -> str:
    return "-" if v is None else format(v, spec)


def format_table(rows: Sequence[dict]) -> str:
    """The rows of a sweep as a plain-text table, errors on their own lines, followed by what the
    columns mean."""
    head = (f"{'model':32s} {'backend':16s} {'batch':>5s} {'HxW':>9s} {'p50 ms':>8s} {'p90 ms':>8s} {'CI%':>5s} "
            f"{'img/s':>7s} {'GFLOP/s':>8s} {'%peak':>6s} {'mem MiB':>8s} {'RSS MiB':>8s} {'train MiB':>9s} "
            f"{'e2e ms':>7s} {'mIoU':>6s}")  # fmt: skip
    lines = [head]
    for r in rows:
        size = "x".join(str(s) for s in r.get("input_size") or []) or "-"
        prefix = f"{r.get('model')!s:32s} {r.get('backend') or '-'!s:16s} {r.get('batch') or '-'!s:>5s} {size:>9s}"
        if r.get("error"):
            lines.append(f"{prefix} error: {r['error']}")
            continue
        ci = None if r.get("ci_rel") is None else 100 * r["ci_rel"]
        conv = "" if r.get("converged") else "*"
        frac = None if r.get("peak_fraction") is None else 100 * r["peak_fraction"]
        miou = None if r.get("sample_miou") is None else 100 * r["sample_miou"]
        lines.append(
            f"{prefix} {_f(r.get('latency_ms_p50'), '.2f'):>8s} {_f(r.get('latency_ms_p90'), '.2f'):>8s} "
            f"{_f(ci, '.1f') + conv:>5s} {_f(r.get('throughput_img_s'), '.2f'):>7s} {_f(r.get('achieved_gflop_s')):>8s} "
            f"{_f(frac):>6s} {_f(r.get('memory_mib')):>8s} {_f(r.get('peak_rss_mib')):>8s} "
            f"{_f(r.get('train_memory_mib')):>9s} {_f(r.get('e2e_ms_p50')):>7s} {_f(miou, '.2f'):>6s}"
        )
        for key in ("e2e_error", "train_error"):
            if r.get(key):
                lines.append(f"{'':32s} {key}: {r[key]}")
    return "\n".join(lines)
