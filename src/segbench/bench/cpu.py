"""The CPU as ``/proc/cpuinfo`` and sysfs describe it: identity, cores, flags, the ISA features that decide a
precision's unit, micro-architecture, caches and clock. Pure functions of the text, except the sysfs readers."""

from __future__ import annotations

from pathlib import Path

__all__ = ["FEATURES", "isa_features", "microarchitecture", "parse_cpuinfo"]

FEATURES = {"avx2": "AVX2", "fma": "FMA", "avx512f": "AVX-512", "avx512_vnni": "AVX512-VNNI",
            "avx_vnni": "AVX-VNNI", "avx512_bf16": "AVX512-BF16", "avx512_fp16": "AVX512-FP16",
            "amx_bf16": "AMX-BF16", "amx_int8": "AMX-INT8", "amx_fp16": "AMX-FP16"}  # fmt: skip
"""cpuinfo flag -> the name the profile shows, for the ISA features that decide a precision's unit."""


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
