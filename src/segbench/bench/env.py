"""The environment a benchmark ran in (library versions, CPU/GPU, threads, cuDNN setting, date) and the
hardware's fp32 peak, so that achieved GFLOP/s can be read against the limit.

CPU peak (theoretical): ``cores x frequency x fp32 FLOPs per cycle per core``, where FLOPs per cycle
= FMA instructions per cycle x vector lanes x 2 (one FMA = 2 FLOPs), per microarchitecture as tabulated
in "FLOPs per cycle for Sandy Bridge and Haswell and others SSE2 / AVX / AVX2 / AVX-512"
(https://stackoverflow.com/q/15655835, answer 15657772). The microarchitecture is told from the vendor,
family and the instruction-set flags in ``/proc/cpuinfo``; the frequency is ``cpu MHz`` there (the
current clock; in a VM usually the nominal one) unless ``cpuinfo_max_freq`` in sysfs gives the maximum.
GPU peak: measured, the best rate of a large fp32 matrix multiply (``torch.mm``, TF32 off), labelled
``"measured matmul peak"``; :func:`measure_matmul_peak` does the same on a CPU.
"""

from __future__ import annotations

import os
import platform
import time
from datetime import datetime, timezone

import torch

from segbench.bench.units import FLOPS_SOURCE  # the units table (bench/units.py) is its home

__all__ = ["cpu_fp32_peak", "cpu_info", "environment_info", "measure_matmul_peak"]


def _cpuinfo_fields(path: str = "/proc/cpuinfo") -> dict[str, str]:
    """The first processor's ``key: value`` fields of /proc/cpuinfo (empty dict without it)."""
    fields: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    if fields:
                        break
                    continue
                key, _, value = line.partition(":")
                fields.setdefault(key.strip().lower(), value.strip())
    except OSError:
        pass
    return fields


def _cpu_model() -> str | None:
    fields = _cpuinfo_fields()
    for key in ("model name", "hardware", "cpu model"):
        if fields.get(key):
            return fields[key]
    return platform.processor() or None


def _physical_cores() -> int | None:
    """Distinct (physical id, core id) pairs in /proc/cpuinfo, else ``os.cpu_count()``."""
    cores, pid, cid = set(), None, None
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                if key == "physical id":
                    pid = value.strip()
                elif key == "core id":
                    cid = value.strip()
                elif not line.strip() and cid is not None:
                    cores.add((pid, cid))
                    pid = cid = None
        if cid is not None:
            cores.add((pid, cid))
    except OSError:
        pass
    return len(cores) or os.cpu_count()


def _frequency_ghz(fields: dict[str, str]) -> tuple[float | None, str]:
    sysfs = "/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq"
    try:
        with open(sysfs, encoding="ascii") as f:
            return int(f.read().strip()) / 1e6, f"{sysfs} (maximum)"
    except (OSError, ValueError):
        pass
    try:
        return float(fields["cpu mhz"]) / 1e3, "/proc/cpuinfo 'cpu MHz' (current clock; may be below turbo)"
    except (KeyError, ValueError):
        return None, "unknown"


def _flops_per_cycle(vendor: str, family: int | None, model: int | None, flags: set[str]) -> tuple[int | None, str]:
    """fp32 FLOPs per cycle per core and the microarchitecture class it assumes."""
    if vendor == "AuthenticAMD" and family is not None:
        if family == 0x1A:
            return (
                64,
                "AMD Zen 5 (family 26): 2 x 512-bit FMA per cycle (server/desktop parts; mobile parts have 256-bit)",
            )
        if family == 0x19:
            return 32, "AMD Zen 3/4 (family 25): 2 x 256-bit FMA per cycle (Zen 4 runs AVX-512 as 2 x 256 bits)"
        if family == 0x17:
            if model is not None and model >= 0x30:
                return 32, "AMD Zen 2 (family 23, model >= 0x30): 2 x 256-bit FMA per cycle"
            return 16, "AMD Zen/Zen+ (family 23): 2 x 128-bit FMA per cycle"
    if "avx512f" in flags:
        return (
            64,
            "AVX-512 with 2 x 512-bit FMA units per core (Skylake-SP Gold/Platinum and later; 1-FMA parts reach half)",
        )
    if "avx2" in flags and "fma" in flags:
        return 32, "AVX2 + FMA: 2 x 256-bit FMA per cycle (Haswell and later)"
    if "avx" in flags:
        return 16, "AVX without FMA: 256-bit add + 256-bit multiply per cycle"
    if "sse2" in flags or "sse" in flags:
        return 8, "SSE: 128-bit add + 128-bit multiply per cycle"
    return None, "unknown instruction set"


def cpu_info() -> dict:
    """What /proc/cpuinfo (and ``torch.backends.cpu``) say about this CPU.

    Returns:
        ``{"cpu", "vendor", "family", "model", "physical_cores", "logical_cpus", "frequency_ghz",
        "frequency_source", "isa" (the vector/matrix flags present among sse2, avx, avx2, fma, avx512f,
        avx512_bf16, avx512_fp16, avx512_vnni, avx_vnni, amx_bf16, amx_fp16, amx_int8, amx_tile), "torch_cpu_capability"}``.
    """
    fields = _cpuinfo_fields()
    flags = set(fields.get("flags", "").split())

    def as_int(key: str) -> int | None:
        try:
            return int(fields[key], 0)
        except (KeyError, ValueError):
            return None

    freq, freq_source = _frequency_ghz(fields)
    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except Exception:  # noqa: BLE001 - older torch
        capability = None
    wanted = ("sse2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni", "avx_vnni",
              "amx_bf16", "amx_fp16", "amx_int8", "amx_tile")
    return {
        "cpu": _cpu_model(),
        "vendor": fields.get("vendor_id"),
        "family": as_int("cpu family"),
        "model": as_int("model"),
        "physical_cores": _physical_cores(),
        "logical_cpus": os.cpu_count(),
        "frequency_ghz": freq,
        "frequency_source": freq_source,
        "isa": [f for f in wanted if f in flags],
        "torch_cpu_capability": capability,
    }


def _cpu_times(path: str) -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs from the aggregate ``cpu`` line of ``/proc/stat``."""
    try:
        with open(path, encoding="ascii") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    values = [int(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def cpu_busy_pct(interval_s: float = 0.5, path: str = "/proc/stat") -> float | None:
    """Share of all CPUs' time (%) spent busy during ``interval_s`` while the calling thread sleeps.

    Called by a benchmark worker just before it times a model: whatever it measures is other processes'
    work (or the machine's), which slows the timing and makes it unrepeatable. Linux only.

    Returns:
        Percent in [0, 100], or None where ``/proc/stat`` cannot be read.
    """
    first = _cpu_times(path)
    if first is None:
        return None
    time.sleep(interval_s)
    second = _cpu_times(path)
    if second is None or second[1] <= first[1]:
        return None
    return 100.0 * (second[0] - first[0]) / (second[1] - first[1])


BUSY_WARN_PCT = 15.0
"""Above this ``cpu_busy_before_pct``, ``segbench benchmark`` and ``compare`` warn that the machine was busy."""


def busy_warning(rows: list[dict]) -> str | None:
    """One line naming the cases timed while other work kept the CPU busy, or None."""
    busy = [r for r in rows if (r.get("cpu_busy_before_pct") or 0.0) > BUSY_WARN_PCT]
    if not busy:
        return None
    worst = max(r["cpu_busy_before_pct"] for r in busy)
    names = ", ".join(dict.fromkeys(str(r.get("model")) for r in busy))
    return (f"warning: other processes kept up to {worst:.0f}% of the CPU busy just before timing {names}; "
            "these latencies are not comparable with an idle machine's (stop other work and run again)")


def cpu_fp32_peak(threads: int | None = None, info: dict | None = None) -> dict:
    """Theoretical fp32 peak of the cores a CPU benchmark uses, in GFLOP/s.

    ``peak = cores x frequency (GHz) x fp32 FLOPs per cycle per core``, with
    ``cores = min(threads, physical cores)`` (``threads`` defaults to ``torch.get_num_threads()``).

    Args:
        threads: Threads the benchmark runs with.
        info: The output of :func:`cpu_info` (read when None).

    Returns:
        ``{"peak_gflops": float | None, "peak_kind": "theoretical", "peak_formula": "C cores x F GHz x
        K FLOP/cycle", "peak_inputs": {...}, "peak_source": ...}``; ``peak_gflops`` is None when the
        frequency or the microarchitecture is unknown.
    """
    info = info or cpu_info()
    flags = set(info.get("isa") or [])
    per_cycle, arch = _flops_per_cycle(info.get("vendor") or "", info.get("family"), info.get("model"), flags)
    threads = threads or torch.get_num_threads()
    cores = min(threads, info.get("physical_cores") or threads)
    freq = info.get("frequency_ghz")
    peak = cores * freq * per_cycle if (freq and per_cycle) else None
    return {
        "peak_gflops": peak,
        "peak_kind": "theoretical",
        "peak_formula": f"{cores} cores x {round(freq, 2) if freq else '?'} GHz x {per_cycle or '?'} FLOP/cycle",
        "peak_inputs": {
            "cores": cores,
            "frequency_ghz": freq,
            "frequency_source": info.get("frequency_source"),
            "flops_per_cycle": per_cycle,
            "microarchitecture": arch,
        },
        "peak_source": FLOPS_SOURCE,
    }


def measure_matmul_peak(device: str | torch.device = "cpu", n: int | None = None, repeats: int = 5) -> dict:
    """Measure the fp32 rate of a large square matrix multiply, in GFLOP/s (``2 n^3`` FLOPs per product).

    TF32 is switched off for the measurement (restored afterwards) so that the figure is true fp32.
    The best of ``repeats`` timed products (after one untimed) is returned.

    Args:
        device: Device to measure.
        n: Matrix side; default 2048 on CPU, 8192 on CUDA.
        repeats: Timed products.

    Returns:
        ``{"peak_gflops", "peak_kind": "measured matmul peak", "peak_formula": "2 n^3 / best time",
        "peak_inputs": {"n", "repeats", "best_ms"}}``.

    Raises:
        RuntimeError: If the device cannot run it (e.g. out of memory).
    """
    device = torch.device(device)
    n = n or (8192 if device.type == "cuda" else 2048)
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        a = torch.randn(n, n, device=device)
        b = torch.randn(n, n, device=device)
        best = float("inf")
        for i in range(repeats + 1):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            torch.mm(a, b)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if i:
                best = min(best, time.perf_counter() - t0)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
    return {
        "peak_gflops": 2 * n**3 / best / 1e9,
        "peak_kind": "measured matmul peak",
        "peak_formula": "2 n^3 / best time of torch.mm (fp32, TF32 off)",
        "peak_inputs": {"n": n, "repeats": repeats, "best_ms": best * 1e3, "threads": torch.get_num_threads()},
    }


def _version(module_name: str) -> str | None:
    try:
        module = __import__(module_name)
    except ImportError:
        return None
    return getattr(module, "__version__", None)


def environment_info(device: str | torch.device) -> dict:
    """Describe the software and hardware a benchmark runs on.

    Args:
        device: The device the benchmark runs on, e.g. ``"cpu"`` or ``"cuda:0"``.

    Returns:
        Dict with ``python``, ``torch``, ``torchvision``, ``numpy`` (version strings, None if not
        installed), ``platform``, ``cpu`` (model name from /proc/cpuinfo, else
        ``platform.processor()``, else None), ``cpu_count``, ``cpu_isa`` (vector flags, see
        :func:`cpu_info`), ``threads`` (``torch.get_num_threads()``), ``interop_threads``,
        ``omp_num_threads`` (the environment variable, None if unset), ``cudnn_benchmark`` (the
        ``torch.backends.cudnn.benchmark`` flag, recorded on every device), ``device`` (string),
        ``date`` (ISO 8601, UTC); on CUDA also ``cuda_device`` (name), ``cuda_version`` and
        ``cudnn_version``.

    Raises:
        RuntimeError: If ``device`` is a CUDA device but CUDA is not available.
    """
    dev = torch.device(device)
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": _version("torchvision"),
        "numpy": _version("numpy"),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_isa": cpu_info()["isa"],
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "device": str(device),
    }
    if dev.type == "cuda":
        info["cuda_device"] = torch.cuda.get_device_name(dev)
        info["cuda_version"] = torch.version.cuda
        info["cudnn_version"] = torch.backends.cudnn.version()
    info["date"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return info
