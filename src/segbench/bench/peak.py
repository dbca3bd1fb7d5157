"""The hardware's peak per precision (fp32, tf32, bf16, fp16, int8), theoretical and measured, so that each
backend's achieved rate is read against the limit of the precision it computes in.

Theoretical CPU peak: ``cores x frequency (GHz) x FLOPs per cycle per core of the precision``, the unit of each
precision, whether it is native (from the cpuinfo flags) and the FLOP/cycle assumptions with their sources:
:mod:`segbench.bench.units` (:func:`~segbench.bench.units.precision_units`). A precision without a unit
(bf16 without ``amx_bf16``/``avx512_bf16``, ...) is emulated through fp32: its peak is the fp32 rate.
GPU theoretical peaks: the dense (no sparsity) tensor-core figures of NVIDIA's data sheets for the parts in
:data:`GPU_DATASHEET_TFLOPS`.

Measured peak (the probe, :func:`measure_peaks`): the best rate of a square GEMM in each precision,
``2 n^3 / best time``, its side grown within a time budget (:func:`segbench.bench.gemm.gemm_rate`): ``torch.mm`` in fp32 (TF32 off), tf32 (CUDA, TF32 on), bf16 and fp16; int8 through
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
from segbench.bench.gemm import EMULATED_MAX_N, gemm_rate, probe_budget_s
from segbench.bench.hardware import GPU_DATASHEET_TFLOPS, hardware_profile, write_cache
from segbench.bench.units import AMX_SOURCE, precision_units

__all__ = [
    "AMX_SOURCE", "GPU_DATASHEET_TFLOPS", "PRECISIONS", "backend_precision", "measure_peaks", "native_precisions",
    "probe_peaks", "theoretical_peaks",
]  # fmt: skip

PRECISIONS = ("fp32", "tf32", "bf16", "fp16", "int8")
def backend_precision(backend: str, device: str = "cpu") -> str:
    """The precision ``backend``'s matrix products run in on ``device``, as the backend registry states it
    (:meth:`segbench.bench.backends.Backend.precision_on`: fp32 is tf32 on CUDA when cuDNN may use it).

    Raises:
        UserError: unknown backend.
    """
    return get_backend(backend).precision_on(device)


def _cpu_per_cycle(flags: set[str], fp32: int | None) -> dict[str, dict]:
    """Per precision: FLOPs (int8: ops) per cycle per core, the unit and whether it is native."""
    if fp32 is None:
        return {p: {"flops_per_cycle": None, "unit": "unknown instruction set", "native": p == "fp32", "source": ""}
                for p in PRECISIONS if p != "tf32"}  # fmt: skip
    return precision_units(flags, fp32)


def native_precisions(info: dict | None = None) -> dict[str, bool]:
    """``{precision: native}`` on this CPU from its cpuinfo flags (:func:`segbench.bench.units.precision_units`),
    never from a library's "supported" answer (oneDNN supports bf16 wherever it can convert to fp32)."""
    info = info or cpu_info()
    return {p: u["native"] for p, u in precision_units(set(info.get("isa") or []), 1).items()}


def theoretical_peaks(device: str = "cpu", threads: int | None = None, info: dict | None = None) -> dict:
    """Theoretical peak per precision, GFLOP/s (int8: giga-ops/s).

    Args:
        device: ``"cpu"`` or ``"cuda[:i]"``.
        threads: CPU threads used (default ``torch.get_num_threads()``); cores = min(threads, physical cores).
        info: :func:`segbench.bench.env.cpu_info` output (read when None).

    Returns:
        ``{precision: {"gflop_s": float | None, "formula": str, "source": str, "unit": str, "native": bool}}``
        (the unit and native on CPU only); on CUDA only for a GPU of
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
    for precision, u in _cpu_per_cycle(set(info.get("isa") or []), inputs["flops_per_cycle"]).items():
        per_cycle, unit = u["flops_per_cycle"], u["unit"]
        peak = cores * freq * per_cycle if (freq and per_cycle) else None
        source = fp32["peak_source"] if precision == "fp32" else u["source"]
        out[precision] = {"gflop_s": peak, "source": source, "unit": unit, "native": u["native"],
                          "formula": f"{cores} cores x {round(freq, 2) if freq else '?'} GHz x {per_cycle or '?'} per cycle ({unit})"}  # fmt: skip
    return out


def measure_peaks(device: str = "cpu", precisions: tuple[str, ...] | None = None, n: int | None = None,
                  repeats: int = 3, budget_s: float | None = None) -> dict:  # fmt: skip
    """The probe: per precision the measured GEMM rate of :func:`segbench.bench.gemm.gemm_rate`, its side
    grown within ``budget_s`` (a CPU precision emulated through fp32 stops at ``n = 256``, ``"emulated": True``;
    ``"native"`` from the cpuinfo flags).

    Args:
        device: ``"cpu"`` or ``"cuda[:i]"``.
        precisions: default fp32, bf16, int8 (and tf32, fp16 on CUDA).
        n: a fixed matrix side instead of the grown one.
        repeats: timed GEMMs at the last size.
        budget_s: seconds per precision (:func:`segbench.bench.gemm.probe_budget_s`).

    Returns:
        ``{precision: {"gflop_s", "n", "best_ms", "kernel", "native", ...} or {"error": one line}}``.
    """
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    precisions = precisions or _probed(dev)
    units = {} if cuda else precision_units(set(cpu_info().get("isa") or []), 1)
    out = {}
    for precision in precisions:
        unit = units.get(precision, {"native": True, "unit": ""})
        emulated = unit["unit"].startswith("emulated")
        try:
            out[precision] = {**gemm_rate(precision, device, budget_s=budget_s, repeats=repeats, n=n,
                                          max_n=EMULATED_MAX_N if emulated else (16384 if cuda else 8192)),
                              "native": unit["native"], "emulated": emulated}  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - a precision this hardware or build lacks
            out[precision] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
    return out


def _probed(device: torch.device) -> tuple[str, ...]:
    """The precisions the probe measures on ``device``."""
    return ("fp32", "tf32", "bf16", "fp16", "int8") if device.type == "cuda" else ("fp32", "bf16", "int8")


def _from_profile(profile: dict, precisions: tuple[str, ...]) -> dict:
    """The probe's measured rates read from a machine's profile (its GEMMs are :func:`gemm_rate` too); the
    precisions it lacks are left out."""
    out = {}
    for precision in precisions:
        entry = (profile.get("precisions") or {}).get(precision) or {}
        measured = entry.get("measured")
        if measured:
            out[precision] = measured if "error" in measured else {
                **measured, "native": entry.get("native", True), "emulated": bool(measured.get("emulated"))}
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
    text = json.dumps(["grown within a budget", probe_budget_s(), str(device.type), threads, torch.__version__, *what], default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def probe_peaks(device: str = "cpu", threads: int | None = None, *, refresh: bool = False, cache: bool = True,
                n: int | None = None, profile: dict | None = None) -> dict:
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
        profile: the machine's profile (:func:`segbench.bench.hardware.hardware_profile`) to read the rates
            from; default: that profile, from its cache or measured (with ``refresh``, measured again). The
            same GEMMs are never timed twice: only a precision the profile lacks is measured here.

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
    if n is None:
        profile = profile or hardware_profile(device, threads, refresh=refresh, cache=cache)
        measured, busy = _from_profile(profile, _probed(dev)), profile.get("busy_pct")
    else:
        measured, busy = {}, None if dev.type == "cuda" else cpu_busy_pct(0.2)
    missing = tuple(p for p in _probed(dev) if p not in measured)
    if missing:
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            measured.update(measure_peaks(device, missing, n=n))
        finally:
            torch.set_num_threads(previous)
        measured = {p: measured[p] for p in _probed(dev)}
    record = {"device": str(device), "threads": threads, "measured": measured, "busy_pct": busy,
              "date": time.strftime("%Y-%m-%dT%H:%M:%S"), "cache_file": str(path) if path else None}  # fmt: skip
    if path is not None and not write_cache(path, record):
        record["cache_file"] = None
    return {**record, "theoretical": theoretical_peaks(device, threads), "cached": False}
