"""The machine's profile: what the CPU (or GPU) is, which unit computes each precision, its theoretical peak,
the measured GEMM rate per precision and the measured memory bandwidth, cached per machine.

Which unit computes each precision, native or emulated, and its FLOP per cycle come from one data table,
:data:`segbench.bench.units.UNITS` (from the ``/proc/cpuinfo`` flags; sources there). Theoretical peak =
``cores x GHz x FLOP/cycle/core`` (int8: operations), ``cores = min(threads, physical cores)``; a formula,
never a measurement. The fp32 FLOP/cycle: :func:`segbench.bench.env._flops_per_cycle` (e.g. 64 for
2 x 512-bit FMA, 32 for Zen 3/4 whose AVX-512 runs as 2 x 256 bits).

Measured GEMM rate (:func:`segbench.bench.gemm.gemm_rate`): ``2 n^3 / best time`` of a square product whose
side ``n`` grows from 64 while one product takes under ``target_s`` (0.2 s) and the precision's time budget
allows, so the probe takes a few seconds on any CPU; a precision emulated through fp32 stops at ``n = 256``
(``"emulated": True``). Memory bandwidth (:func:`segbench.bench.gemm.stream_bandwidth`): STREAM's copy (``a = b``, 2 x 4 bytes per element) and triad (``a = b + s c``, 3 x 4 bytes) over float32
arrays of 4x the last-level cache (at least 64 MiB; 8 MiB under a test-sized budget below 0.25 s), best of the
repeats, in GB/s (10^9 bytes/s).

The time budget per precision is ``budget_s`` or ``$SEGBENCH_PROBE_BUDGET_S`` (default 1.5 s); the test suite
sets it small so no test's duration depends on the CPU.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from pathlib import Path

import torch

from segbench.bench.cpu import (FEATURES, _caches, _frequency, _frequency_from, _read, isa_features,
                               microarchitecture, parse_cpuinfo)
from segbench.bench.env import _flops_per_cycle
from segbench.bench.gemm import EMULATED_MAX_N, gemm_rate, probe_budget_s, stream_bandwidth
from segbench.bench.profile_text import format_profile, hardware_summary
from segbench.bench.units import AMX_SOURCE, ISA_SOURCE, UNITS, precision_units

__all__ = [
    "AMX_SOURCE", "EMULATED_MAX_N", "FEATURES", "GPU_DATASHEET_TFLOPS", "ISA_SOURCE", "PRECISIONS",
    "cpu_profile_static", "format_profile", "gemm_rate", "hardware_profile", "hardware_summary", "isa_features",
    "microarchitecture", "parse_cpuinfo", "precision_units", "probe_budget_s", "stream_bandwidth", "write_cache",
]  # fmt: skip

PRECISIONS = tuple(UNITS)
"""The CPU precisions of the profile (:data:`segbench.bench.units.UNITS`): fp32, bf16, fp16, int8."""

GPU_DATASHEET_TFLOPS = {
    "H200": {"fp32": 67.0, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4, "int8": 1978.9},
    "H100 80GB HBM3": {"fp32": 67.0, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4, "int8": 1978.9},
    "A100": {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0, "fp16": 312.0, "int8": 624.0},
}
"""Dense tensor-core peaks in TFLOPS (int8: TOPS) of NVIDIA's data sheets (H100/H200 SXM, A100 SXM), by a
substring of ``torch.cuda.get_device_name``."""

_PROFILE_VERSION = 1


def write_cache(path: Path, record: dict) -> bool:
    """Write ``record`` as JSON to ``path`` atomically (a temporary file beside it, then a rename); False when
    the cache folder cannot be written (a cache is optional: the caller measures again next time)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(record, indent=1), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        return False
    return True

def cpu_profile_static(text: str, threads: int, frequency: tuple[float | None, str] | None = None,
                       caches: dict | None = None) -> dict:  # fmt: skip
    """The unmeasured part of a CPU profile from cpuinfo text: identity, features, units and theoretical peaks.

    Returns:
        ``{"kind": "cpu", "model_name", "vendor", "family", "model", "microarchitecture", "logical_cpus",
        "physical_cores", "threads", "frequency_ghz", "frequency_source", "caches_kib", "features",
        "precisions": {p: {"unit", "native", "flops_per_cycle", "theoretical_gflop_s", "formula", "source"}}}``.
    """
    cpu = parse_cpuinfo(text)
    flags = cpu["flags"]
    fp32_per_cycle, fp32_arch = _flops_per_cycle(cpu["vendor"] or "", cpu["family"], cpu["model"], set(flags))
    cores = min(threads, cpu["physical_cores"] or threads)
    freq, freq_source = frequency or _frequency_from(cpu)
    precisions = {}
    for name, unit in precision_units(flags, fp32_per_cycle).items():
        per_cycle = unit["flops_per_cycle"]
        peak = cores * freq * per_cycle if (freq and per_cycle) else None
        freq_text = f"{freq:.3g}" if freq else "?"
        precisions[name] = {**unit, "theoretical_gflop_s": peak,
                            "formula": f"{cores} cores x {freq_text} GHz x {per_cycle or '?'} per cycle ({unit['unit']})"}  # fmt: skip
    precisions["fp32"]["assumption"] = fp32_arch
    return {
        "kind": "cpu", "model_name": cpu["model_name"], "vendor": cpu["vendor"], "family": cpu["family"],
        "model": cpu["model"], "microarchitecture": microarchitecture(cpu["vendor"], cpu["family"], cpu["model"], flags),
        "logical_cpus": cpu["logical_cpus"], "physical_cores": cpu["physical_cores"], "threads": threads,
        "frequency_ghz": freq, "frequency_source": freq_source, "caches_kib": caches or {},
        "features": isa_features(flags), "flags_sha1": hashlib.sha1(" ".join(flags).encode()).hexdigest()[:12],
        "precisions": precisions,
    }  # fmt: skip

def _measure(profile: dict, device: torch.device, budget_s: float | None) -> None:
    """The GEMM rate per precision and the bandwidth, into ``profile`` (in place)."""
    for name, entry in profile["precisions"].items():
        try:
            emulated = str(entry.get("unit")).startswith("emulated")
            entry["measured"] = {**gemm_rate(name, str(device), budget_s=budget_s,
                                             max_n=EMULATED_MAX_N if emulated else 8192), "emulated": emulated}  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - a precision this build or device lacks
            entry["measured"] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
            continue
        rate, peak = entry["measured"].get("gflop_s"), entry.get("theoretical_gflop_s")
        if rate and peak and rate > peak:  # the clock ran above the one assumed (a VM's nominal 'cpu MHz')
            entry["theoretical_below_measured"] = (
                f"the measured {rate:.1f} GFLOP/s is above this peak ({peak:.1f}): the clock ran above the "
                f"{profile.get('frequency_ghz') or '?'} GHz assumed ({profile.get('frequency_source')}); the roofline "
                "takes the measured rate as its compute ceiling")  # fmt: skip
    if probe_budget_s(budget_s) < 0.25:
        array_mib = 8.0  # a test-sized budget: small arrays (the rate is then the caches', not memory's)
    elif device.type == "cuda":
        array_mib = 1024.0
    else:
        llc = max(profile["caches_kib"].values(), default=32 * 1024)
        array_mib = max(64.0, 4 * llc / 1024)
    try:
        profile["memory_bandwidth"] = stream_bandwidth(array_mib, str(device))
    except (RuntimeError, MemoryError) as exc:  # out of memory
        profile["memory_bandwidth"] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}


def _cache_dir() -> Path:
    root = os.environ.get("SEGBENCH_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "segbench"
    return Path(root) / "hardware"


def _static(device: torch.device, threads: int) -> dict:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        sheet = next((v for k, v in GPU_DATASHEET_TFLOPS.items() if k in name), {})
        props = torch.cuda.get_device_properties(device)
        return {"kind": "cuda", "model_name": name, "memory_mib": props.total_memory / 2**20,
                "multiprocessors": props.multi_processor_count, "cuda": torch.version.cuda,
                "precisions": {p: {"unit": "tensor cores" if p != "fp32" else "CUDA cores", "native": p in sheet,
                                   "theoretical_gflop_s": sheet[p] * 1e3 if p in sheet else None,
                                   "formula": f"{name} data sheet, dense" if p in sheet else "not in the data sheet table",
                                   "source": "NVIDIA data sheet"} for p in ("fp32", "tf32", "bf16", "fp16", "int8")}}  # fmt: skip
    text = _read("/proc/cpuinfo")
    cpu = parse_cpuinfo(text)
    return cpu_profile_static(text, threads, _frequency(cpu), _caches(cpu))


def hardware_profile(device: str = "cpu", threads: int | None = None, *, refresh: bool = False, cache: bool = True,
                     budget_s: float | None = None) -> dict:  # fmt: skip
    """The machine's profile (:func:`cpu_profile_static` plus measured GEMM rates and bandwidth), cached.

    The cache file (``$SEGBENCH_CACHE_DIR/hardware/KEY.json``, default ``~/.cache/segbench``, written
    atomically) is keyed by the CPU model and flags (or GPU name), the threads, the torch version and the
    probe budget.

    Args:
        device: ``"cpu"`` or ``"cuda[:i]"``.
        threads: CPU threads (default ``torch.get_num_threads()``); the probes run with it.
        refresh: measure again even when a cached profile exists.
        cache: read and write the cache.
        budget_s: seconds per precision's probe (:func:`probe_budget_s`).

    Returns:
        The profile with ``"precisions"[p]["measured"]`` (:func:`gemm_rate` or ``{"error"}``),
        ``"memory_bandwidth"`` (:func:`stream_bandwidth`), ``"busy_pct"`` (CPU busy just before), ``"torch"``,
        ``"date"``, ``"measure_s"``, ``"cached"`` and ``"cache_file"``.
    """
    from segbench.bench.env import cpu_busy_pct

    dev = torch.device(device)
    threads = threads or torch.get_num_threads()
    profile = _static(dev, threads)
    key_text = json.dumps([_PROFILE_VERSION, dev.type, profile["model_name"], profile.get("flags_sha1"), threads,
                           torch.__version__, platform.machine(), probe_budget_s(budget_s)])  # fmt: skip
    path = _cache_dir() / f"{hashlib.sha1(key_text.encode()).hexdigest()[:16]}.json" if cache else None
    if path is not None and not refresh and path.is_file():
        try:
            return {**json.loads(path.read_text(encoding="utf-8")), "cached": True, "cache_file": str(path)}
        except (OSError, ValueError):
            pass
    busy = None if dev.type == "cuda" else cpu_busy_pct(0.2)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    start = time.perf_counter()
    try:
        _measure(profile, dev, budget_s)
    finally:
        torch.set_num_threads(previous)
    profile.update(busy_pct=busy, torch=torch.__version__, measure_s=time.perf_counter() - start,
                   date=time.strftime("%Y-%m-%dT%H:%M:%S"), budget_s=probe_budget_s(budget_s))  # fmt: skip
    if path is not None and not write_cache(path, profile):
        path = None
    return {**profile, "cached": False, "cache_file": str(path) if path else None}
