"""The machine's profile (:func:`segbench.bench.hardware.hardware_profile`) as text for people: a table
(``segbench hardware``) and a few one-line entries for an environment table (the report's, ``results.json``)."""

from __future__ import annotations

__all__ = ["format_profile", "hardware_summary"]


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
