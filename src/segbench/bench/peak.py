"""The hardware's peak per precision (fp32, tf32, bf16, fp16, int8), theoretical and measured, so that each
backend's achieved rate is read against the limit of the precision it computes in.

Theoretical CPU peak: ``cores x frequency (GHz) x FLOPs per cycle per core of the precision``, with

========= ==================================================== ================================================
precision FLOPs (or int8 ops) per cycle per core                source
========= ==================================================== ================================================
fp32      FMA units x lanes x 2 (:func:`segbench.bench.env.cpu_fp32_peak`: 64 with 2 x 512-bit FMA)  see env
bf16      AMX-BF16 (``amx_bf16``): 1024; AVX-512 BF16 (``avx512_bf16``): 128 (``vdpbf16ps``: 16 lanes x 2
          products x 2 FLOPs, 2 per cycle); else the fp32 rate (converted to fp32)
fp16      AMX-FP16 (``amx_fp16``): 1024; AVX-512 FP16 (``avx512_fp16``): 128 (32 lanes x 2 FLOPs x 2 FMA units)
int8      AMX-INT8 (``amx_int8``): 2048; AVX-512 VNNI (``avx512_vnni``): 256 (``vpdpbusd``: 64 multiply-adds,
          2 per cycle); else 2x the fp32 rate
========= ==================================================== ================================================

AMX figures: Intel 64 and IA-32 Architectures Optimization Reference Manual, chapter "Intel Advanced Matrix
Extensions" (4th Gen Xeon Scalable: 2048 INT8 or 1024 BF16 operations per cycle per core from the TMUL unit).
GPU theoretical peaks: the dense (no sparsity) tensor-core figures of NVIDIA's data sheets for the parts in
:data:`GPU_DATASHEET_TFLOPS`.

Measured peak (the probe, :func:`measure_peaks`): the best rate of a large square GEMM in each precision,
``2 n^3 / best time``: ``torch.mm`` in fp32 (TF32 off), tf32 (CUDA, TF32 on), bf16 and fp16; int8 through
oneDNN's quantised linear (``torch.ops.onednn.qlinear_pointwise``, uint8 x int8, the kernel PyTorch's x86
int8 path runs) on CPU, else ``torch._int_mm`` (int8 x int8 -> int32). Probes are cached per machine
(:func:`probe_peaks`).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import torch

from segbench.bench.backends import get_backend
from segbench.bench.env import cpu_fp32_peak, cpu_info

__all__ = [
    "AMX_SOURCE", "GPU_DATASHEET_TFLOPS", "PRECISIONS", "backend_precision", "measure_peaks", "probe_peaks",
    "theoretical_peaks",
]  # fmt: skip

PRECISIONS = ("fp32", "tf32", "bf16", "fp16", "int8")
AMX_SOURCE = ("Intel 64 and IA-32 Architectures Optimization Reference Manual, chapter 'Intel Advanced Matrix "
              "Extensions': 2048 INT8 / 1024 BF16 ops per cycle per core (4th Gen Xeon Scalable)")  # fmt: skip

GPU_DATASHEET_TFLOPS = {
    "H200": {"fp32": 67.0, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4, "int8": 1978.9},
    "H100 80GB HBM3": {"fp32": 67.0, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4, "int8": 1978.9},
    "A100": {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0, "fp16": 312.0, "int8": 624.0},
}
"""Dense tensor-core peaks in TFLOPS (int8: TOPS) of NVIDIA's data sheets (H100/H200 SXM, A100 SXM), by a
substring of ``torch.cuda.get_device_name``."""


def backend_precision(backend: str, device: str = "cpu") -> str:
    """The precision ``backend``'s matrix products run in on ``device``, as the backend registry states it
    (:meth:`segbench.bench.backends.Backend.precision_on`: fp32 is tf32 on CUDA when cuDNN may use it).

    Raises:
        UserError: unknown backend.
    """
    return get_backend(backend).precision_on(device)


def _cpu_per_cycle(flags: set[str], fp32: int | None) -> dict[str, tuple[int | None, str]]:
    """FLOPs (int8: ops) per cycle per core and the unit that gives them, per precision."""
    if fp32 is None:
        return {p: (None, "unknown instruction set") for p in PRECISIONS if p != "tf32"}

    def pick(options, fallback):
        return next(((k, why) for flag, k, why in options if flag in flags), fallback)

    return {
        "fp32": (fp32, "FMA units x lanes x 2"),
        "bf16": pick([("amx_bf16", 1024, "AMX-BF16 TMUL"), ("avx512_bf16", 128, "AVX-512 BF16 vdpbf16ps x 2")],
                     (fp32, "no bf16 unit: the fp32 rate")),
        "fp16": pick([("amx_fp16", 1024, "AMX-FP16 TMUL"), ("avx512_fp16", 128, "AVX-512 FP16 FMA x 2")],
                     (fp32, "no fp16 unit: the fp32 rate")),
        "int8": pick([("amx_int8", 2048, "AMX-INT8 TMUL"), ("avx512_vnni", 256, "AVX-512 VNNI vpdpbusd x 2")],
                     (2 * fp32, "no int8 dot-product unit: 2x the fp32 rate")),
    }  # fmt: skip


def theoretical_peaks(device: str = "cpu", threads: int | None = None, info: dict | None = None) -> dict:
    """Theoretical peak per precision, GFLOP/s (int8: giga-ops/s).

    Args:
        device: ``"cpu"`` or ``"cuda[:i]"``.
        threads: CPU threads used (default ``torch.get_num_threads()``); cores = min(threads, physical cores).
        info: :func:`segbench.bench.env.cpu_info` output (read when None).

    Returns:
        ``{precision: {"gflop_s": float | None, "formula": str, "source": str}}``; on CUDA only for a GPU of
        :data:`GPU_DATASHEET_TFLOPS` (else ``{}``).
    """
    if str(device).startswith("cuda"):
        name = torch.cuda.get_device_name(device) if torch.cuda.is_available() else ""
        sheet = next((v for k, v in GPU_DATASHEET_TFLOPS.items() if k in name), None)
        if sheet is None:
            return {}
        return {p: {"gflop_s": tf * 1e3, "formula": f"{name} data sheet, dense", "source": "NVIDIA data sheet"}
                for p, tf in sheet.items()}  # fmt: skip
    info = info or cpu_info()
    fp32 = cpu_fp32_peak(threads, info)
    inputs = fp32["peak_inputs"]
    cores, freq = inputs["cores"], inputs["frequency_ghz"]
    out = {}
    for precision, (per_cycle, unit) in _cpu_per_cycle(set(info.get("isa") or []), inputs["flops_per_cycle"]).items():
        peak = cores * freq * per_cycle if (freq and per_cycle) else None
        source = fp32["peak_source"] if precision == "fp32" else (AMX_SOURCE if "AMX" in unit else "Intel ISA reference")
        out[precision] = {"gflop_s": peak, "source": source,
                          "formula": f"{cores} cores x {freq or '?'} GHz x {per_cycle or '?'} per cycle ({unit})"}  # fmt: skip
    return out


def _gemm(precision: str, n: int, device: torch.device):
    """A no-argument callable running one ``n x n x n`` GEMM in ``precision``, and what it runs."""
    if precision == "int8":
        a = torch.randint(-64, 64, (n, n), dtype=torch.int8, device=device)
        if device.type == "cpu" and hasattr(torch.ops, "onednn") and hasattr(torch.ops.onednn, "qlinear_prepack"):
            x = torch.randint(0, 128, (n, n), dtype=torch.uint8)
            packed = torch.ops.onednn.qlinear_prepack(a, [n, n])
            scales, zeros = torch.ones(n), torch.zeros(n, dtype=torch.long)
            return (lambda: torch.ops.onednn.qlinear_pointwise(x, 1.0, 0, packed, scales, zeros, None, 1.0, 0,
                                                               torch.float32, "none", [], "")), "onednn.qlinear"  # fmt: skip
        return (lambda: torch._int_mm(a, a)), "torch._int_mm"
    dtype = {"fp32": torch.float32, "tf32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    return (lambda: torch.mm(a, b)), "torch.mm"


def measure_peaks(device: str = "cpu", precisions: tuple[str, ...] | None = None, n: int | None = None,
                  repeats: int = 4) -> dict:  # fmt: skip
    """The probe: the best rate of ``repeats`` timed ``n x n`` GEMMs (after one untimed) per precision.

    Args:
        device: ``"cpu"`` or ``"cuda[:i]"``.
        precisions: default fp32, bf16, int8 (and tf32, fp16 on CUDA).
        n: matrix side; default 2048 for fp32 on CPU, 4096 for the faster CPU precisions, 8192 on CUDA.
        repeats: timed GEMMs.

    Returns:
        ``{precision: {"gflop_s", "n", "best_ms", "kernel"} or {"error": one line}}``.
    """
    device = torch.device(device)
    cuda = device.type == "cuda"
    precisions = precisions or (("fp32", "tf32", "bf16", "fp16", "int8") if cuda else ("fp32", "bf16", "int8"))
    tf32 = torch.backends.cuda.matmul.allow_tf32
    out = {}
    for precision in precisions:
        side = n or (8192 if cuda else (2048 if precision == "fp32" else 4096))
        torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
        try:
            fn, kernel = _gemm(precision, side, device)
            best = float("inf")
            for i in range(repeats + 1):
                if cuda:
                    torch.cuda.synchronize(device)
                t0 = time.perf_counter()
                fn()
                if cuda:
                    torch.cuda.synchronize(device)
                if i:
                    best = min(best, time.perf_counter() - t0)
            out[precision] = {"gflop_s": 2 * side**3 / best / 1e9, "n": side, "best_ms": best * 1e3, "kernel": kernel}
        except Exception as exc:  # noqa: BLE001 - a precision this hardware or build lacks
            out[precision] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
        finally:
            torch.backends.cuda.matmul.allow_tf32 = tf32
    return out


def _cache_dir() -> Path:
    root = os.environ.get("SEGBENCH_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "segbench"
    return Path(root) / "peak"


def _machine_key(device: torch.device, threads: int) -> str:
    if device.type == "cuda":
        what = [torch.cuda.get_device_name(device), torch.version.cuda]
    else:
        info = cpu_info()
        what = [info.get("cpu"), info.get("isa"), info.get("physical_cores"), info.get("frequency_ghz")]
    text = json.dumps([str(device.type), threads, torch.__version__, *what], default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def probe_peaks(device: str = "cpu", threads: int | None = None, *, refresh: bool = False, cache: bool = True,
                n: int | None = None) -> dict:
    """Theoretical and measured peaks per precision, the measurement cached per machine.

    The cache file (``$SEGBENCH_CACHE_DIR/peak/KEY.json``, default ``~/.cache/segbench``) is keyed by the CPU
    (model, flags, cores, clock) or GPU name, the threads and the torch version. A probe timed while other
    processes kept the CPU busy (above :data:`segbench.bench.env.BUSY_WARN_PCT`) says so in ``busy_pct``.

    Args:
        device: ``"cpu"`` or ``"cuda[:i]"``.
        threads: CPU threads (default ``torch.get_num_threads()``).
        refresh: measure again even when a cached probe exists.
        cache: read and write the cache (False: measure, keep nothing).
        n: GEMM side of :func:`measure_peaks` (smoke tests); a probe with ``n`` is never cached.

    Returns:
        ``{"device", "threads", "theoretical": {precision: {...}}, "measured": {precision: {...}},
        "cached": bool, "cache_file": str | None, "busy_pct": float | None, "date"}``.
    """
    from segbench.bench.env import cpu_busy_pct

    dev = torch.device(device)
    threads = threads or torch.get_num_threads()
    path = _cache_dir() / f"{_machine_key(dev, threads)}.json" if cache and n is None else None
    if path is not None and not refresh and path.is_file():
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
            return {**stored, "theoretical": theoretical_peaks(device, threads), "cached": True}
        except (OSError, ValueError):
            pass
    busy = None if dev.type == "cuda" else cpu_busy_pct(0.2)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        measured = measure_peaks(device, n=n)
    finally:
        torch.set_num_threads(previous)
    record = {"device": str(device), "threads": threads, "measured": measured, "busy_pct": busy,
              "date": time.strftime("%Y-%m-%dT%H:%M:%S"), "cache_file": str(path) if path else None}  # fmt: skip
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(record, indent=1), encoding="utf-8")
            os.replace(tmp, path)
        except OSError:
            record["cache_file"] = None
    return {**record, "theoretical": theoretical_peaks(device, threads), "cached": False}
