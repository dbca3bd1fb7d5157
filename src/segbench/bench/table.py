"""Benchmark helpers for the command line: input sizes from ``HxW`` values, model specs checked without
building them, and a sweep's rows as a plain-text table."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from segbench.errors import UserError

__all__ = ["TABLE_COLUMNS", "check_specs", "format_table", "parse_sizes"]

TABLE_COLUMNS = (
    "model", "backend", "batch", "input_size", "latency_ms_p50", "latency_ms_p90", "ci_rel", "converged",
    "throughput_img_s", "achieved_gflop_s", "peak_fraction", "memory_mib", "peak_rss_mib", "train_memory_mib",
    "e2e_ms_p50", "sample_miou", "error", "e2e_error", "train_error",
)  # fmt: skip
"""The row columns (:data:`segbench.bench.schema.FIELDS`) :func:`format_table` shows."""


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
    from segbench.external import check_spec, external_kind
    from segbench.models import MODELS

    errors = {}
    for spec in models:
        if external_kind(spec) is not None:
            try:
                check_spec(spec)
            except UserError as exc:
                errors[spec] = str(exc)
            continue
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
            f"{'img/s':>7s} {'GFLOP/s':>8s} {'prec':>4s} {'%peak':>6s} {'%probe':>6s} {'roof ms':>7s} {'%roof':>5s} {'mem MiB':>8s} {'RSS MiB':>8s} {'train MiB':>9s} "
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
        probe = None if r.get("probe_fraction") is None else 100 * r["probe_fraction"]
        roof = None if r.get("roofline_fraction") is None else 100 * r["roofline_fraction"]
        miou = None if r.get("sample_miou") is None else 100 * r["sample_miou"]
        lines.append(
            f"{prefix} {_f(r.get('latency_ms_p50'), '.2f'):>8s} {_f(r.get('latency_ms_p90'), '.2f'):>8s} "
            f"{_f(ci, '.1f') + conv:>5s} {_f(r.get('throughput_img_s'), '.2f'):>7s} {_f(r.get('achieved_gflop_s')):>8s} "
            f"{r.get('peak_precision') or '-'!s:>4s} {_f(frac):>6s} {_f(probe):>6s} {_f(r.get('roofline_bound_ms'), '.2f'):>7s} {_f(roof):>5s} {_f(r.get('memory_mib')):>8s} {_f(r.get('peak_rss_mib')):>8s} "
            f"{_f(r.get('train_memory_mib')):>9s} {_f(r.get('e2e_ms_p50')):>7s} {_f(miou, '.2f'):>6s}"
        )
        for key in ("e2e_error", "train_error"):
            if r.get(key):
                lines.append(f"{'':32s} {key}: {r[key]}")
    return "\n".join(lines)


def format_probe(probe: dict) -> str:
    """The peak probe (:func:`segbench.bench.peak.probe_peaks`) as lines: per precision the theoretical and the
    measured GFLOP/s, with the formula and the GEMM that measured it."""
    where = "cached " + str(probe.get("date")) if probe.get("cached") else "measured now"
    busy = probe.get("busy_pct")
    lines = [f"peak probe ({probe.get('device')}, {probe.get('threads')} threads, {where}"
             + (f", CPU {busy:.0f}% busy before it" if busy is not None else "") + "):"]  # fmt: skip
    theory, measured = probe.get("theoretical") or {}, probe.get("measured") or {}
    for precision in [p for p in ("fp32", "tf32", "bf16", "fp16", "int8") if p in measured]:
        t, m = theory.get(precision) or {}, measured.get(precision) or {}
        got = m.get("error") or f"{_f(m.get('gflop_s'))} GFLOP/s measured ({m.get('kernel')}, n = {m.get('n')})"
        share = ""
        if m.get("gflop_s") and t.get("gflop_s"):
            share = f", {100 * m['gflop_s'] / t['gflop_s']:.0f}% of theoretical"
        lines.append(f"  {precision:5s} theoretical {_f(t.get('gflop_s'))} GFLOP/s ({t.get('formula') or '-'}); {got}{share}")
    return "\n".join(lines)
