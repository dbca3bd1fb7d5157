"""The machine's profile: what the CPU (or GPU) is, which unit computes each precision, its theoretical peak,
the measured GEMM rate per precision and the measured memory bandwidth, cached per machine.

Native or emulated, from the ``/proc/cpuinfo`` flags (never from a library's "supported" answer, which is
true for bf16 wherever oneDNN can convert to fp32):

========= ================================================= ==========================================
precision native when                                        unit
========= ================================================= ==========================================
fp32      always                                             AVX-512 FMA (``avx512f``) / AVX2 FMA / ...
bf16      ``amx_bf16`` or ``avx512_bf16``                    AMX-BF16 / AVX512-BF16 (``vdpbf16ps``)
fp16      ``amx_fp16`` or ``avx512_fp16``                    AMX-FP16 / AVX512-FP16
int8      ``amx_int8``, ``avx512_vnni`` or ``avx_vnni``       AMX-INT8 / AVX-512 VNNI / AVX-VNNI (``vpdpbusd``)
========= ================================================= ==========================================

Theoretical peak = ``cores x GHz x FLOP/cycle/core`` (int8: operations), ``cores = min(threads, physical
cores)``; a formula, never a measurement. FLOP/cycle assumptions:

* fp32: :func:`segbench.bench.env._flops_per_cycle` (FMA units x lanes x 2 per microarchitecture; e.g. 64 for
  2 x 512-bit FMA, 32 for Zen 3/4 whose AVX-512 runs as 2 x 256 bits).
* bf16 with AVX512-BF16: 2x the fp32 rate (``vdpbf16ps`` does 2 products + 2 adds per fp32 lane where an
  FMA does 1 + 1, at the same throughput as ``vfmadd``: Intel Intrinsics Guide / Agner Fog's instruction
  tables). fp16 with AVX512-FP16: 2x the fp32 rate (twice the lanes per register).
* int8 with VNNI (``vpdpbusd``, 4 u8 x s8 products + adds per int32 lane): 4x the fp32 rate; without VNNI,
  ``vpmaddubsw`` + ``vpmaddwd`` + ``vpaddd``: taken as 2x the fp32 rate.
* AMX (``amx_bf16``/``amx_fp16``: 1024, ``amx_int8``: 2048 per cycle per core): Intel 64 and IA-32
  Architectures Optimization Reference Manual, chapter "Intel Advanced Matrix Extensions".
* A precision without a unit is computed through fp32: its peak is the fp32 rate, ``native`` False.

Measured GEMM rate (:func:`gemm_rate`): ``2 n^3 / best time`` of a square product whose side ``n`` grows from
64 while one product takes under ``target_s`` (0.2 s) and the precision's time budget allows, so the probe takes
a few seconds on any CPU; a precision emulated through fp32 stops at ``n = 256`` (``"emulated": True``). Memory bandwidth (:func:`stream_bandwidth`):
STREAM's copy (``a = b``, 2 x 4 bytes per element) and triad (``a = b + s c``, 3 x 4 bytes) over float32
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

from segbench.bench.env import FLOPS_SOURCE, _flops_per_cycle

__all__ = [
    "FEATURES", "GPU_DATASHEET_TFLOPS", "PRECISIONS", "gemm_rate", "hardware_profile", "isa_features",
    "format_profile", "hardware_summary", "microarchitecture", "parse_cpuinfo", "precision_units", "probe_budget_s", "stream_bandwidth",
]  # fmt: skip

PRECISIONS = ("fp32", "bf16", "fp16", "int8")
FEATURES = {"avx2": "AVX2", "fma": "FMA", "avx512f": "AVX-512", "avx512_vnni": "AVX512-VNNI",
            "avx_vnni": "AVX-VNNI", "avx512_bf16": "AVX512-BF16", "avx512_fp16": "AVX512-FP16",
            "amx_bf16": "AMX-BF16", "amx_int8": "AMX-INT8", "amx_fp16": "AMX-FP16"}  # fmt: skip
"""cpuinfo flag -> the name the profile shows, for the ISA features that decide a precision's unit."""

AMX_SOURCE = ("Intel 64 and IA-32 Architectures Optimization Reference Manual, chapter 'Intel Advanced Matrix "
              "Extensions': 2048 INT8 / 1024 BF16 ops per cycle per core (4th Gen Xeon Scalable)")  # fmt: skip
ISA_SOURCE = "Intel Intrinsics Guide / Agner Fog's instruction tables: dot-product instructions at FMA throughput"

GPU_DATASHEET_TFLOPS = {
    "H200": {"fp32": 67.0, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4, "int8": 1978.9},
    "H100 80GB HBM3": {"fp32": 67.0, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4, "int8": 1978.9},
    "A100": {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0, "fp16": 312.0, "int8": 624.0},
}
"""Dense tensor-core peaks in TFLOPS (int8: TOPS) of NVIDIA's data sheets (H100/H200 SXM, A100 SXM), by a
substring of ``torch.cuda.get_device_name``."""

DEFAULT_BUDGET_S = 1.5
EMULATED_MAX_N = 256
_PROFILE_VERSION = 1


def probe_budget_s(budget_s: float | None = None) -> float:
    """The time budget of one precision's GEMM probe, in seconds: ``budget_s``, else
    ``$SEGBENCH_PROBE_BUDGET_S``, else 1.5."""
    if budget_s is not None:
        return float(budget_s)
    try:
        return float(os.environ["SEGBENCH_PROBE_BUDGET_S"])
    except (KeyError, ValueError):
        return DEFAULT_BUDGET_S


def parse_cpuinfo(text: str) -> dict:
    """The CPU as ``/proc/cpuinfo`` text describes it (a pure function of the text).

    Returns:
        ``{"model_name", "vendor", "family", "model", "stepping", "flags" (sorted list), "mhz",
        "cache_size_kb" (the first processor's ``cache size``), "logical_cpus" (processor entries),
        "physical_cores" (distinct physical id / core id pairs, else logical_cpus)}``; absent fields are None.
    """
    blocks = [b for b in text.split("\n\n") if b.strip()]
    entries = []
    for block in blocks:
        fields: dict[str, str] = {}
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields.setdefault(key.strip().lower(), value.strip())
        entries.append(fields)
    first = next((e for e in entries if "processor" in e), entries[0] if entries else {})

    def number(key: str, cast=int):
        try:
            return cast(first[key], 0) if cast is int else cast(first[key])
        except (KeyError, ValueError):
            return None

    cores = {(e.get("physical id"), e["core id"]) for e in entries if "core id" in e}
    logical = sum(1 for e in entries if "processor" in e) or None
    cache = (first.get("cache size") or "").split()
    return {
        "model_name": first.get("model name") or first.get("hardware") or first.get("cpu model"),
        "vendor": first.get("vendor_id"),
        "family": number("cpu family"),
        "model": number("model"),
        "stepping": number("stepping"),
        "flags": sorted(set(first.get("flags", "").split())),
        "mhz": number("cpu mhz", float),
        "cache_size_kb": int(cache[0]) if cache and cache[0].isdigit() else None,
        "logical_cpus": logical,
        "physical_cores": len(cores) or logical,
    }


def microarchitecture(vendor: str | None, family: int | None, model: int | None, flags) -> str | None:
    """The micro-architecture's name from vendor, family, model and flags, where known (else None)."""
    flags = set(flags)
    if vendor == "AuthenticAMD" and family is not None:
        if family == 0x1A:
            return "Zen 5"
        if family == 0x19:
            return "Zen 4" if "avx512f" in flags else "Zen 3"
        if family == 0x17:
            return "Zen 2" if (model or 0) >= 0x30 else "Zen / Zen+"
    if vendor == "GenuineIntel" and family == 6 and model is not None:
        names = {0x3F: "Haswell", 0x4F: "Broadwell", 0x55: "Cascade Lake" if "avx512_vnni" in flags else "Skylake",
                 0x6A: "Ice Lake", 0x6C: "Ice Lake", 0x7E: "Ice Lake", 0x8F: "Sapphire Rapids",
                 0xCF: "Emerald Rapids", 0xAD: "Granite Rapids", 0x97: "Alder Lake", 0xB7: "Raptor Lake"}  # fmt: skip
        return names.get(model)
    return None


def isa_features(flags) -> dict[str, bool]:
    """``{shown name: present}`` for each flag of :data:`FEATURES`."""
    flags = set(flags)
    return {name: flag in flags for flag, name in FEATURES.items()}


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


def precision_units(flags, fp32_per_cycle: int | None) -> dict[str, dict]:
    """Per precision, the unit that computes it, whether it is native, and FLOP (int8: ops) per cycle per core.

    Args:
        flags: The cpuinfo flags.
        fp32_per_cycle: fp32 FLOP per cycle per core (:func:`segbench.bench.env._flops_per_cycle`), or None.

    Returns:
        ``{precision: {"unit", "native", "flops_per_cycle" (None when fp32's is unknown), "source"}}`` for
        :data:`PRECISIONS`.
    """
    flags = set(flags)
    fp32_unit = ("AVX-512 FMA" if "avx512f" in flags else "AVX2 FMA" if {"avx2", "fma"} <= flags
                 else "AVX" if "avx" in flags else "SSE")  # fmt: skip

    def times(k):
        return fp32_per_cycle * k if fp32_per_cycle else None

    emulated = {"unit": "emulated through fp32", "native": False, "flops_per_cycle": fp32_per_cycle,
                "source": "no unit for this precision: converted to fp32, the fp32 rate"}  # fmt: skip
    out = {"fp32": {"unit": fp32_unit, "native": True, "flops_per_cycle": fp32_per_cycle, "source": FLOPS_SOURCE}}
    if "amx_bf16" in flags:
        out["bf16"] = {"unit": "AMX-BF16", "native": True, "flops_per_cycle": 1024, "source": AMX_SOURCE}
    elif "avx512_bf16" in flags:
        out["bf16"] = {"unit": "AVX512-BF16", "native": True, "flops_per_cycle": times(2), "source": ISA_SOURCE}
    else:
        out["bf16"] = dict(emulated)
    if "amx_fp16" in flags:
        out["fp16"] = {"unit": "AMX-FP16", "native": True, "flops_per_cycle": 1024, "source": AMX_SOURCE}
    elif "avx512_fp16" in flags:
        out["fp16"] = {"unit": "AVX512-FP16", "native": True, "flops_per_cycle": times(2), "source": ISA_SOURCE}
    else:
        out["fp16"] = dict(emulated)
    if "amx_int8" in flags:
        out["int8"] = {"unit": "AMX-INT8", "native": True, "flops_per_cycle": 2048, "source": AMX_SOURCE}
    elif "avx512_vnni" in flags or "avx_vnni" in flags:
        unit = "AVX-512 VNNI" if "avx512_vnni" in flags else "AVX-VNNI"
        out["int8"] = {"unit": unit, "native": True, "flops_per_cycle": times(4), "source": ISA_SOURCE}
    else:
        unit = "AVX2 without VNNI" if "avx2" in flags else "no int8 dot-product unit"
        out["int8"] = {"unit": unit, "native": False, "flops_per_cycle": times(2),
                       "source": "vpmaddubsw + vpmaddwd + vpaddd: taken as 2x the fp32 rate"}  # fmt: skip
    return out


def _gemm(precision: str, n: int, device: torch.device):
    """A no-argument callable running one ``n x n x n`` GEMM in ``precision``, and the kernel it runs."""
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


def _time_once(fn, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0


def gemm_rate(precision: str, device: str = "cpu", *, budget_s: float | None = None, target_s: float = 0.2,
              max_n: int = 8192, repeats: int = 3, n: int | None = None) -> dict:  # fmt: skip
    """The measured rate of a square GEMM in ``precision``, its size found within a time budget.

    From ``n = 64`` the side doubles while one product takes under ``target_s``, the next size fits the
    budget (two products of 8x the time) and ``n < max_n``; at the last size up to ``repeats`` products are
    timed while the budget lasts (at least one). With ``n`` given, that size only.

    Args:
        precision: fp32, tf32 (CUDA), bf16, fp16 or int8.
        device: ``"cpu"`` or ``"cuda[:i]"``.
        budget_s: seconds for this precision (:func:`probe_budget_s`).
        target_s: a product's time under which the size grows.
        max_n: largest side.
        repeats: timed products at the last size.
        n: a fixed side (no growth).

    Returns:
        ``{"gflop_s", "n", "best_ms", "kernel", "sizes" (sides tried), "elapsed_s"}`` (int8: giga-ops/s).

    Raises:
        RuntimeError: A precision this build or device cannot run (the caller records it).
    """
    dev = torch.device(device)
    budget = probe_budget_s(budget_s)
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"  # fp32 is true fp32
    try:
        return _grow(precision, dev, budget, target_s, max_n, repeats, n)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32


def _grow(precision: str, dev: torch.device, budget: float, target_s: float, max_n: int, repeats: int,
          n: int | None) -> dict:  # fmt: skip
    start = time.perf_counter()
    side = n or 64
    sizes = []
    while True:
        fn, kernel = _gemm(precision, side, dev)
        sizes.append(side)
        first = _time_once(fn, dev)  # includes packing and first-touch: warm-up
        t = _time_once(fn, dev)
        elapsed = time.perf_counter() - start
        if n is not None or t >= target_s or side * 2 > max_n or elapsed + 2 * 8 * max(t, first / 2) > budget:
            break
        side *= 2
    best = t
    for _ in range(repeats - 1):
        if time.perf_counter() - start + t > budget:
            break
        best = min(best, _time_once(fn, dev))
    return {"gflop_s": 2 * side**3 / best / 1e9, "n": side, "best_ms": best * 1e3, "kernel": kernel,
            "sizes": sizes, "elapsed_s": time.perf_counter() - start}  # fmt: skip


def stream_bandwidth(array_mib: float, device: str = "cpu", repeats: int = 5) -> dict:
    """STREAM-style copy and triad bandwidth over float32 arrays of ``array_mib`` MiB, best of ``repeats``.

    Returns:
        ``{"copy_gb_s", "triad_gb_s", "array_mib", "repeats", "method"}`` (GB = 10^9 bytes; write-allocate
        traffic not counted, as in STREAM).
    """
    dev = torch.device(device)
    count = int(array_mib * 2**20 // 4)
    a = torch.zeros(count, device=dev)
    b = torch.full((count,), 1.5, device=dev)
    c = torch.full((count,), 0.5, device=dev)
    best_copy = best_triad = float("inf")
    for _ in range(repeats):
        best_copy = min(best_copy, _time_once(lambda: a.copy_(b), dev))
        best_triad = min(best_triad, _time_once(lambda: torch.add(b, c, alpha=3.0, out=a), dev))
    nbytes = count * 4
    return {"copy_gb_s": 2 * nbytes / best_copy / 1e9, "triad_gb_s": 3 * nbytes / best_triad / 1e9,
            "array_mib": count * 4 / 2**20, "repeats": repeats,
            "method": "torch copy_ (a = b) and add(out=a) (a = b + 3 c), float32, best of repeats"}  # fmt: skip


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _caches(cpu: dict) -> dict:
    """``{"L1d", "L1i", "L2", "L3": KiB}`` of cpu0 from sysfs, else the cpuinfo ``cache size``."""
    out = {}
    root = Path("/sys/devices/system/cpu/cpu0/cache")
    for index in sorted(root.glob("index*")) if root.is_dir() else []:
        level, kind, size = (_read(str(index / f)).strip() for f in ("level", "type", "size"))
        suffix = {"Data": "d", "Instruction": "i"}.get(kind, "")
        if level and size[:-1].isdigit():
            kib = int(size[:-1]) * (1024 if size.endswith("M") else 1)
            out[f"L{level}{suffix}"] = kib
    if not out and cpu.get("cache_size_kb"):
        out["cache_size (cpuinfo)"] = cpu["cache_size_kb"]
    return out


def _frequency(cpu: dict) -> tuple[float | None, str]:
    """GHz and where it came from: sysfs ``cpuinfo_max_freq`` when present, else cpuinfo ``cpu MHz``."""
    sysfs = "/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq"
    text = _read(sysfs).strip()
    if text.isdigit():
        return int(text) / 1e6, f"{sysfs} (maximum)"
    return _frequency_from(cpu)


def _frequency_from(cpu: dict) -> tuple[float | None, str]:
    if cpu.get("mhz"):
        return cpu["mhz"] / 1e3, "/proc/cpuinfo 'cpu MHz' (current clock; may be below turbo)"
    return None, "unknown"


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


def _num(v, spec: str = ".1f") -> str:
    return "-" if v is None else format(v, spec)


def format_profile(profile: dict) -> str:
    """The profile of :func:`hardware_profile` as a table for people: identity, features, then one row per
    precision (unit, native, theoretical peak and its formula, measured GEMM rate) and the memory bandwidth."""
    where = f"cached {profile.get('date')}" if profile.get("cached") else f"measured now in {_num(profile.get('measure_s'))} s"
    busy = profile.get("busy_pct")
    lines = [f"{profile.get('model_name')} ({where}"
             + (f"; CPU {busy:.0f}% busy just before: rates measured under that load" if busy is not None else "") + ")"]  # fmt: skip
    if profile.get("kind") == "cpu":
        caches = ", ".join(f"{k} {v} KiB" for k, v in (profile.get("caches_kib") or {}).items()) or "-"
        on = [k for k, v in (profile.get("features") or {}).items() if v]
        off = [k for k, v in (profile.get("features") or {}).items() if not v]
        lines += [
            f"  vendor {profile.get('vendor')}, family {profile.get('family')}, model {profile.get('model')}, "
            f"micro-architecture {profile.get('microarchitecture') or 'unknown'}",
            f"  {profile.get('logical_cpus')} logical CPUs, {profile.get('physical_cores')} physical cores, "
            f"{profile.get('threads')} torch threads; {_num(profile.get('frequency_ghz'), '.3f')} GHz "
            f"({profile.get('frequency_source')})",
            f"  caches: {caches}",
            f"  features: {', '.join(on) or '-'}; absent: {', '.join(off) or '-'}",
        ]  # fmt: skip
    else:
        lines.append(f"  {_num(profile.get('memory_mib'), '.0f')} MiB, {profile.get('multiprocessors')} SMs, CUDA {profile.get('cuda')}")
    header = f"  {'precision':9s} {'unit':22s} {'native':6s} {'theoretical':>12s} {'measured':>10s}  n     formula"
    lines += ["", header, "  " + "-" * (len(header) - 2)]
    for name, p in (profile.get("precisions") or {}).items():
        m = p.get("measured") or {}
        rate = "error" if "error" in m else _num(m.get("gflop_s"))
        lines.append(f"  {name:9s} {p.get('unit', '-'):22s} {'yes' if p.get('native') else 'no':6s} "
                     f"{_num(p.get('theoretical_gflop_s')):>12s} {rate:>10s}  {str(m.get('n', '-')):5s} {p.get('formula')}")  # fmt: skip
    lines.append("  (GFLOP/s; int8 in giga-ops/s; theoretical = formula, not measured; measured = 2 n^3 / best time)")
    bw = profile.get("memory_bandwidth") or {}
    if bw:
        lines.append(f"  memory bandwidth (measured): copy {_num(bw.get('copy_gb_s'))} GB/s, triad "
                     f"{_num(bw.get('triad_gb_s'))} GB/s ({_num(bw.get('array_mib'), '.0f')} MiB arrays, best of {bw.get('repeats')})")  # fmt: skip
    for name, p in (profile.get("precisions") or {}).items():
        if "error" in (p.get("measured") or {}):
            lines.append(f"  {name}: {p['measured']['error']}")
    if profile.get("cache_file"):
        lines.append(f"  cache: {profile['cache_file']}")
    return "\n".join(lines)


def hardware_summary(profile: dict) -> dict[str, str]:
    """The profile as a few ``{key: one line}`` entries for an environment table (the report's, ``results.json``):
    the machine, its features, per precision its unit, native or emulated, theoretical and measured rate, and
    the measured memory bandwidth. The whole profile: ``segbench hardware --json``."""
    out = {}
    if profile.get("kind") == "cpu":
        caches = profile.get("caches_kib") or {}
        llc = max(caches, key=lambda k: caches[k]) if caches else None
        out["hardware"] = (f"{profile.get('model_name')} ({profile.get('microarchitecture') or 'micro-architecture unknown'}),"
                           f" {profile.get('physical_cores')} physical cores, {profile.get('threads')} threads, "
                           f"{_num(profile.get('frequency_ghz'), '.2f')} GHz" + (f", {llc} {caches[llc]} KiB" if llc else ""))  # fmt: skip
        out["hardware features"] = ", ".join(k for k, v in (profile.get("features") or {}).items() if v) or "-"
    else:
        out["hardware"] = f"{profile.get('model_name')}, {_num(profile.get('memory_mib'), '.0f')} MiB"
    for name, p in (profile.get("precisions") or {}).items():
        m = p.get("measured") or {}
        measured = m["error"] if "error" in m else f"measured {_num(m.get('gflop_s'))} (n = {m.get('n')})"
        unit = str(p.get("unit"))
        unit = unit if unit.startswith("emulated") else f"{unit}, {'native' if p.get('native') else 'not native'}"
        out[f"hardware {name}"] = (f"{unit}; theoretical "
                                   f"{_num(p.get('theoretical_gflop_s'))} GFLOP/s ({p.get('formula')}), {measured}")  # fmt: skip
    bw = profile.get("memory_bandwidth") or {}
    if "copy_gb_s" in bw:
        out["memory bandwidth"] = (f"measured copy {_num(bw.get('copy_gb_s'))} GB/s, triad {_num(bw.get('triad_gb_s'))} "
                                   f"GB/s ({_num(bw.get('array_mib'), '.0f')} MiB arrays)")  # fmt: skip
    busy = profile.get("busy_pct")
    out["hardware measured"] = f"{profile.get('date')}" + (f", CPU {busy:.0f}% busy just before" if busy is not None else "")
    return out
