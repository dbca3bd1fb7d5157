"""The roofline plot: achieved GFLOP/s against arithmetic intensity (FLOP/byte), log-log, one point per model x
backend, under the ceilings each point is read against (:mod:`segbench.bench.roofline`).

Per precision of the rows: the memory ceiling (slope: the measured STREAM triad bandwidth, GFLOP/s = intensity x
GB/s) meeting the compute ceiling (the theoretical peak, solid) at the ridge point, and the same roof with the
measured GEMM rate as its compute ceiling (dashed). One SVG serves both renderings: inline in report.html (its
points carry tooltips and backend toggles like the Pareto plot's) and as ``roofline.svg`` beside report.md;
its colours are presentation attributes, so the file draws alone and the page's CSS restyles it.
"""

from __future__ import annotations

import html
import math

from segbench.report.svgplot import hex_colour, labelled_point
from segbench.report.values import fmt, fmt_pct, num

__all__ = ["roofline_note", "roofline_points", "roofline_svg"]

W, H = 680, 400  # px: the plot's view box
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 14, 44  # px: margins around the axes
ROOF = "#8a8a8a"


def roofline_points(rows: list[dict]) -> list[dict]:
    """The rows a point is drawn for: a positive intensity and achieved rate, without an error."""
    return [r for r in rows if not r.get("error") and (num(r.get("arithmetic_intensity_flop_per_byte")) or 0) > 0
            and (num(r.get("achieved_gflop_s")) or 0) > 0]  # fmt: skip


def _roofs(pts: list[dict]) -> list[tuple[str, float, float, bool]]:
    """(precision, compute ceiling GFLOP/s, bandwidth GB/s, measured) of each distinct roof of the points."""
    roofs = []
    for r in pts:
        bw = num(r.get("roofline_bandwidth_gb_s"))
        for key, measured in (("roofline_peak_gflop_s", False), ("roofline_gemm_gflop_s", True)):
            peak = num(r.get(key))
            roof = (str(r.get("roofline_precision") or "fp32"), peak, bw, measured)
            if peak and bw and roof not in roofs:
                roofs.append(roof)
    return roofs


def _log_ticks(lo: float, hi: float) -> list[float]:
    """Powers of ten in ``[lo, hi]``; with 2 and 5 between them when the range spans under two decades."""
    ticks = []
    for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        for m in (1, 2, 5) if math.log10(hi / lo) < 2 else (1,):
            if lo <= m * 10**e <= hi:
                ticks.append(m * 10**e)
    return ticks


def _tip(r: dict) -> str:
    ceiling = r.get("roofline_ceiling")
    lines = [r["_label"], f"backend: {r.get('backend') or 'eager'} ({r.get('roofline_precision') or '?'})",
             f"{fmt(r.get('arithmetic_intensity_flop_per_byte'))} FLOP/byte, {fmt(r.get('bytes_per_forward_mb'))} MB "
             f"per call", f"achieved {fmt(r.get('achieved_gflop_s'))} GFLOP/s"]  # fmt: skip
    if ceiling:
        lines.append(f"bound {fmt(r.get('roofline_bound_gflop_s'))} GFLOP/s ({ceiling}), "
                     f"{fmt(r.get('roofline_bound_ms'))} ms; {fmt_pct(r.get('roofline_fraction'))}% of it")
    return "\n".join(lines)


def roofline_svg(rows: list[dict], colours: dict, standalone: bool = False) -> str | None:
    """The plot as an ``<svg>`` element (``id="sb-roofline-svg"``); None when no row has an intensity and an
    achieved rate (FLOPs not counted, or every case failed).

    Args:
        rows: Result rows with ``_label``, ``arithmetic_intensity_flop_per_byte``, ``achieved_gflop_s`` and the
            ``roofline_*`` columns of :func:`segbench.bench.roofline.add_roofline`.
        colours: ``_label`` -> matplotlib RGBA, as the other figures.
        standalone: With the SVG namespace, for the file ``roofline.svg`` (inline HTML needs none, and the page
            names no outside address).
    """
    pts = roofline_points(rows)
    if not pts:
        return None
    roofs = _roofs(pts)
    xs = [num(r["arithmetic_intensity_flop_per_byte"]) for r in pts]
    ys = [num(r["achieved_gflop_s"]) for r in pts]
    ridges = [peak / bw for _, peak, bw, _ in roofs]
    x0, x1 = min(xs + ridges) / 2, max(xs + ridges) * 2
    y0 = min(ys + [bw * x0 for _, _, bw, _ in roofs]) / 2
    y1 = max(ys + [peak for _, peak, _, _ in roofs]) * 2
    lx0, lx1, ly0, ly1 = (math.log10(v) for v in (x0, x1, y0, y1))

    def px(x):
        return LEFT + (math.log10(x) - lx0) / (lx1 - lx0) * (W - LEFT - RIGHT)

    def py(y):
        return H - BOTTOM - (math.log10(y) - ly0) / (ly1 - ly0) * (H - TOP - BOTTOM)

    xmlns = ' xmlns="http://www.w3.org/2000/svg"' if standalone else ""
    out = [f'<svg{xmlns} id="sb-roofline-svg" viewBox="0 0 {W} {H}" font-size="12" '
           'font-family="sans-serif" role="img" aria-label="roofline: achieved GFLOP/s against FLOP per byte, '
           'log-log, with the memory and compute ceilings">']  # fmt: skip
    for t in _log_ticks(x0, x1):
        out.append(f'<line class="grid" stroke="#e4e4e4" x1="{px(t):.1f}" x2="{px(t):.1f}" y1="{TOP}" '
                   f'y2="{H - BOTTOM}"/><text x="{px(t):.1f}" y="{H - BOTTOM + 16}" '
                   f'text-anchor="middle">{fmt(t)}</text>')
    for t in _log_ticks(y0, y1):
        out.append(f'<line class="grid" stroke="#e4e4e4" x1="{LEFT}" x2="{W - RIGHT}" y1="{py(t):.1f}" '
                   f'y2="{py(t):.1f}"/><text x="{LEFT - 6}" y="{py(t) + 4:.1f}" text-anchor="end">{fmt(t)}</text>')
    out.append(f'<line class="axis" stroke="#666" x1="{LEFT}" x2="{W - RIGHT}" y1="{H - BOTTOM}" y2="{H - BOTTOM}"/>'
               f'<line class="axis" stroke="#666" x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{H - BOTTOM}"/>'
               f'<text x="{(LEFT + W - RIGHT) / 2}" y="{H - 8}" text-anchor="middle">arithmetic intensity '
               f'(FLOP/byte, log)</text><text transform="translate(14 {(TOP + H - BOTTOM) / 2}) rotate(-90)" '
               'text-anchor="middle">achieved GFLOP/s (log)</text>')  # fmt: skip
    for precision, peak, bw, measured in roofs:
        ridge = peak / bw
        dash = ' stroke-dasharray="6 4"' if measured else ""
        what = "measured GEMM" if measured else "peak"
        out.append(f'<path class="roof" data-precision="{html.escape(precision)}" fill="none" stroke="{ROOF}" '
                   f'stroke-width="1.5"{dash} d="M{px(x0):.1f},{py(bw * x0):.1f} L{px(ridge):.1f},{py(peak):.1f} '
                   f'L{px(x1):.1f},{py(peak):.1f}"/>'
                   f'<text class="roof-label" x="{W - RIGHT - 4}" y="{py(peak) - 5:.1f}" text-anchor="end">'
                   f'{html.escape(precision)} {what} {fmt(peak)} GFLOP/s</text>')  # fmt: skip
    for bw in sorted({bw for _, _, bw, _ in roofs}):
        out.append(f'<text class="roof-label" x="{px(x0) + 6:.1f}" y="{py(bw * x0) - 8:.1f}">triad {fmt(bw)} GB/s'
                   "</text>")
    for r, x, y in zip(pts, xs, ys):
        colour = hex_colour(colours[r["_label"]])
        backend = html.escape(r.get("backend") or "eager")
        out.append(labelled_point(r["_label"], backend, px(x), py(y), colour, _tip(r), W, extra=' stroke="#fff"'))
    out.append("</svg>")
    return "".join(out)


def roofline_note(rows: list[dict]) -> str:
    """The paragraph under the plot: what a point, the ceilings and the fraction are; or why nothing is drawn."""
    if not roofline_points(rows):
        return ("No roofline: no row has both a FLOP and byte count and an achieved rate (models segbench did not "
                "build are not counted, and failed cases have no rate).")
    text = ("Each point is one model x backend: its achieved GFLOP/s (FLOPs x batch / median latency) against its "
            "arithmetic intensity, FLOPs per byte moved by one forward call. Bytes: the weights once plus each leaf "
            "layer's input and output, at the width of the backend's precision, with no cache reuse modelled. The "
            "slope is the memory ceiling (intensity x the measured STREAM triad bandwidth), the flat line the "
            "compute ceiling of that precision (solid: theoretical peak; dashed: measured GEMM rate); a point is "
            "bound by the lower of the two. Activations that stay in cache make the counted bytes too many, so a "
            "point above the slope is not an error: the memory ceiling is pessimistic for small inputs.")
    if not any(r.get("roofline_ceiling") for r in rows):
        reason = next((r.get("roofline_error") for r in rows if r.get("roofline_error")), None)
        text += " No ceilings: " + (reason or "the rows have no hardware profile") + "."
    return text
