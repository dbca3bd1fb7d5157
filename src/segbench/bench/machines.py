"""Which machine measured a row, and a warning when rows that sit side by side come from different machines.

A resumed ``segbench benchmark`` or ``segbench compare`` may finish on another machine than the one it began on;
speeds from two machines are not comparable, so every row carries ``machine`` (:func:`machine_id`) and the
tables and reports that put rows side by side say when they differ (:func:`machines_differ`).
"""

from __future__ import annotations

__all__ = ["machine_id", "machines_differ"]


def machine_id(profile: dict | None, fallback: str | None = None) -> str | None:
    """One line naming the machine of a hardware profile (:func:`segbench.bench.hardware.hardware_profile`): the
    CPU or GPU model, its micro-architecture, cores and threads used, and a hash of the ISA flags (two CPUs of one
    name can differ in them); ``fallback`` (e.g. the environment's CPU string) without a profile."""
    if not profile:
        return fallback
    if profile.get("kind") == "cuda":
        return f"{profile.get('model_name')} (CUDA)"
    arch = profile.get("microarchitecture") or "micro-architecture unknown"
    return (f"{profile.get('model_name')} ({arch}), {profile.get('physical_cores')} cores, "
            f"{profile.get('threads')} threads, flags {profile.get('flags_sha1')}")


def machines_differ(rows: list[dict]) -> str | None:
    """A one-line warning when ``rows`` (each with ``machine``) were measured on more than one machine, naming
    them and how many rows each measured; None when they share one (rows without ``machine`` are not counted)."""
    counts: dict[str, int] = {}
    for r in rows:
        if r.get("machine"):
            counts[r["machine"]] = counts.get(r["machine"], 0) + 1
    if len(counts) < 2:
        return None
    named = "; ".join(f"{m}: {n} row(s)" for m, n in counts.items())
    return (f"warning: these rows were measured on {len(counts)} different machines, so their speeds are not "
            f"comparable: {named}")
