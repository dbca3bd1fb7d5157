"""``--backend best``: for each model, the fastest backend whose accuracy stays within a stated band of eager.

Accuracy is compared on the images compare evaluates (the calibration sample by default): the mIoU difference
from eager's, in points, where the images are labelled with the model's classes; else the disagreement with
eager's label maps, ``100 x (1 - agreement mIoU)`` points. Bands (:data:`BAND_POINTS`): 0.5 points for int8
backends, 0.05 for bf16 and for the fp32 ones (an fp32 backend should not change the labels). Among the backends
within the band, the one with the lowest median latency wins; eager is always a candidate (band 0), so every
model gets a choice.

Native first: ``best`` (and every default backend list, :func:`native_candidates`) chooses only among the backends
whose precision this machine computes natively (:data:`segbench.bench.units.UNITS`, from the cpuinfo flags); the
others are left out with the reason (``left_out``: ``{backend: "bf16: emulated on this CPU (no amx_bf16/
avx512_bf16)"}``, printed and recorded in the choice). A backend named explicitly still runs, with a one-line
warning (:func:`native_notes`).
"""

from __future__ import annotations

import importlib.util

from segbench.bench.backends import EXPORTER_MODULES, get_backend, registered
from segbench.bench.peak import backend_precision

__all__ = ["BAND_POINTS", "BEST", "candidates", "choose_best", "describe_choice", "expand_backends", "mark_best",
           "native_candidates", "native_notes"]  # fmt: skip

BEST = "best"
BAND_POINTS = {"int8": 0.5, "bf16": 0.05, "fp32": 0.05, "tf32": 0.05}
"""Largest accuracy loss against eager, in mIoU points, a backend of each precision may have to be chosen."""


def _installed(*modules: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in modules)


def native_candidates(device: str = "cpu", flags=None) -> tuple[list[str], dict[str, str]]:
    """The backends ``best`` tries on ``device``, and those it leaves out with why.

    A candidate is a registered backend whose packages are installed (its modules, and the ONNX exporter's for the
    exported ones), that runs on ``device``'s kind and whose precision this machine computes natively
    (:meth:`segbench.bench.backends.Backend.not_native_reason`); eager is first.

    Args:
        device: ``"cpu"`` or ``"cuda[:i]"``.
        flags: the cpuinfo flags of the CPU to choose for (default: this machine's).

    Returns:
        ``(candidates, left_out)``: names in registry order, and ``{backend: reason}`` (one line each) of the
        backends left out because their precision is emulated here or their packages are missing (a backend that
        does not run on ``device``'s kind at all is not listed).
    """
    kind = "cuda" if str(device).startswith("cuda") else "cpu"
    out, left_out = [], {}
    for b in registered():
        if kind not in b.devices:
            continue
        missing = [m for m in (*b.modules, *(EXPORTER_MODULES if b.exports_onnx else ())) if not _installed(m)]
        reason = b.not_native_reason(kind, flags)
        if reason:
            left_out[b.name] = reason
        elif missing:
            left_out[b.name] = f"not installed ({', '.join(missing)}: {b.install_hint or 'pip install ' + missing[0]})"
        else:
            out.append(b.name)
    return out, left_out


def candidates(device: str = "cpu", flags=None) -> list[str]:
    """The backends ``best`` tries on ``device`` (:func:`native_candidates`, without the left-out ones)."""
    return native_candidates(device, flags)[0]


def native_notes(backends, device: str = "cpu", flags=None) -> list[str]:
    """The lines to print before running ``backends``: with ``best``, which backends it leaves out and why;
    for each backend named explicitly whose precision is emulated here, a one-line warning."""
    lines = []
    if BEST in backends:
        chosen, left_out = native_candidates(device, flags)
        lines.append(f"best: choosing among {', '.join(chosen)} (what this machine computes natively)")
        lines += [f"best: left out {name} ({why})" for name, why in left_out.items()]
    for name in dict.fromkeys(b for b in backends if b != BEST):
        reason = get_backend(name).not_native_reason(device, flags)
        if reason:
            lines.append(f"warning: --backend {name}: {reason}; it runs, slower than a native precision would")
    return lines


def expand_backends(backends: list[str] | tuple[str, ...], device: str = "cpu", flags=None) -> list[str]:
    """``backends`` with ``best`` replaced by :func:`candidates` (eager first), duplicates dropped."""
    if BEST not in backends:
        return list(dict.fromkeys(backends))
    out: list[str] = ["eager"]
    for b in backends:
        out += candidates(device, flags) if b == BEST else [b]
    return list(dict.fromkeys(out))


def _loss_points(row: dict, eager: dict) -> tuple[float | None, str]:
    """The accuracy ``row`` loses against ``eager`` in points, and on what it is measured."""
    if row is eager:
        return 0.0, "eager itself"
    if row.get("miou") is not None and eager.get("miou") is not None:
        return 100 * (eager["miou"] - row["miou"]), "mIoU difference from eager"
    if row.get("sample_miou") is not None and eager.get("sample_miou") is not None:  # benchmark rows
        return 100 * (eager["sample_miou"] - row["sample_miou"]), "mIoU difference from eager on the benchmark's images"
    if row.get("agreement_miou") is not None:
        return 100 * (1 - row["agreement_miou"]), "disagreement with eager's label maps (100 - agreement mIoU)"
    return None, "no accuracy measured"


def choose_best(rows: list[dict], device: str = "cpu") -> dict | None:
    """The fastest row of one model whose accuracy loss against eager is within its precision's band.

    Args:
        rows: result rows of one model (``backend``, ``latency_ms_p50``, ``miou`` / ``sample_miou`` (benchmark) /
            ``agreement_miou``, ``error``).
        device: where they ran (the precision of the fp32 backends on CUDA is tf32).

    Returns:
        ``{"backend", "latency_ms_p50", "speedup_vs_eager", "loss_points", "band_points", "basis", "rejected"}``
        (``rejected``: ``{backend: why}`` of the faster backends left out), or None without a timed eager row.
    """
    eager = next((r for r in rows if r.get("backend") == "eager" and not r.get("error") and r.get("latency_ms_p50")),
                 None)  # fmt: skip
    if eager is None:
        return None
    rejected, best = {}, None
    for row in sorted((r for r in rows if not r.get("error") and r.get("latency_ms_p50")),
                      key=lambda r: r["latency_ms_p50"]):  # fmt: skip
        band = 0.0 if row is eager else BAND_POINTS[backend_precision(row["backend"], device)]
        loss, basis = _loss_points(row, eager)
        if loss is None or loss > band:
            rejected[row["backend"]] = f"{basis}: {'-' if loss is None else f'{loss:.2f}'} points > band {band:g}"
            continue
        best = {"backend": row["backend"], "latency_ms_p50": row["latency_ms_p50"], "loss_points": loss,
                "speedup_vs_eager": eager["latency_ms_p50"] / row["latency_ms_p50"], "band_points": band,
                "basis": basis, "rejected": rejected}  # fmt: skip
        break
    return best


def mark_best(rows: list[dict], device: str = "cpu", flags=None) -> dict | None:
    """:func:`choose_best` of one model's rows, recorded in them: ``best`` (True on the chosen row, False on the
    others) and ``best_choice`` (the choice, with ``left_out``: ``{backend: reason}`` of the backends ``best``
    did not try here, :func:`native_candidates`) on the chosen row."""
    choice = choose_best(rows, device)
    if choice is not None:
        ran = {r.get("backend") for r in rows}
        choice["left_out"] = {b: why for b, why in native_candidates(device, flags)[1].items() if b not in ran}
    for r in rows:
        r["best"] = choice is not None and r.get("backend") == choice["backend"] and not r.get("error")
        if r["best"]:
            r["best_choice"] = choice
    return choice


def describe_choice(model: str, choice: dict | None) -> str:
    """One line: what to deploy for ``model`` and why."""
    if choice is None:
        return f"deploy {model}: no choice (eager did not run, so there is no reference)"
    return (f"deploy {model}: {choice['backend']} ({choice['speedup_vs_eager']:.2f}x eager, "
            f"{choice['latency_ms_p50']:.2f} ms; {choice['basis']} {choice['loss_points']:.2f} points, "
            f"band {choice['band_points']:g}; faster but outside the band: "
            f"{', '.join(choice['rejected']) or 'none'}"
            + "".join(f"; left out {b}: {why}" for b, why in (choice.get("left_out") or {}).items()) + ")")  # fmt: skip
