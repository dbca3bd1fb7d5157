"""The Pareto plot of report.html as inline SVG: mIoU (%) against median latency (ms), one point per row.

Each point carries its tooltip (model, backend, mIoU with its interval when results hold one, latency p50 /
p90, size, GFLOPs, memory), its label beside it and its backend, so the page's script shows the tooltip on hover and hides a
backend's points when it is toggled off. The Pareto front is the same as pareto.png's: its points outlined, joined by a dashed step line.
"""

from __future__ import annotations

import html
import math

from segbench.report.results import pareto_front
from segbench.report.values import fmt, fmt_pct, num

W, H = 680, 400  # px: the plot's view box
LEFT, RIGHT, TOP, BOTTOM = 58, 16, 14, 44  # px: margins around the axes


def hex_colour(rgba) -> str:
    """A matplotlib RGBA colour (floats in [0, 1]) as ``#rrggbb``."""
    return "#" + "".join(f"{round(float(c) * 255):02x}" for c in rgba[:3])


def labelled_point(label: str, backend: str, x: float, y: float, colour: str, tip: str, width: float,
                   cls: str = "pt", extra: str = "") -> str:
    """One plot point as SVG: its label beside it (to the left in the right 30% of a plot ``width`` px wide)
    and a circle of radius 7 px at ``(x, y)`` px with its tooltip; ``backend`` (escaped) for the toggles."""
    anchor = "end" if x > width * 0.7 else "start"
    dx = -10 if anchor == "end" else 10
    return (f'<text class="pt-label" data-backend="{backend}" x="{x + dx:.1f}" y="{y - 9:.1f}" '
            f'text-anchor="{anchor}">{html.escape(label)}</text>'
            f'<circle class="{cls}" r="7" cx="{x:.1f}" cy="{y:.1f}" fill="{colour}"{extra} '
            f'data-backend="{backend}" data-tip="{html.escape(tip)}"><title>{html.escape(label)}</title></circle>')


def interval(value) -> tuple[float, float] | None:
    """``(low, high)`` of an interval given as ``[low, high]`` or ``{"low"/"lo", "high"/"hi"}``; None otherwise."""
    if isinstance(value, dict):
        value = (value.get("low", value.get("lo")), value.get("high", value.get("hi")))
    if isinstance(value, (list, tuple)) and len(value) == 2:
        lo, hi = num(value[0]), num(value[1])
        if lo is not None and hi is not None:
            return lo, hi
    return None


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering ``[lo, hi]``."""
    span = max(hi - lo, 1e-9)
    step = 10 ** math.floor(math.log10(span / n))
    for m in (1, 2, 2.5, 5, 10):
        if span / (step * m) <= n:
            step *= m
            break
    start = math.floor(lo / step) * step
    return [start + k * step for k in range(int(math.ceil((hi - start) / step)) + 1)]


def _tip(r: dict) -> str:
    lines = [r["_label"], f"backend: {r.get('backend') or 'eager'}"]
    miou = f"mIoU {fmt_pct(r['miou'])}%"
    ci = interval(r.get("miou_interval"))
    if ci:
        miou += f" [{ci[0] * 100:.1f}, {ci[1] * 100:.1f}]"
    lines.append(miou)
    lines.append(f"latency p50 {fmt(r.get('latency_ms_p50'))} ms, p90 {fmt(r.get('latency_ms_p90'))} ms")
    lines.append(f"size {fmt(r.get('size_mb'))} MB, {fmt(r.get('gflops'))} GFLOPs, memory {fmt(r.get('memory_mib'))} MiB")
    return "\n".join(lines)


def pareto_svg(rows: list[dict], colours: dict) -> str | None:
    """The plot as an ``<svg>`` element inside ``<div class="plot">``; None when no row has both an mIoU and a
    latency (pareto.png's note says why)."""
    pts = [r for r in rows if num(r.get("miou")) is not None and num(r.get("latency_ms_p50")) is not None]
    if not pts:
        return None
    xs = [num(r["latency_ms_p50"]) for r in pts]
    ys = [num(r["miou"]) * 100 for r in pts]
    ivs = [interval(r.get("miou_interval")) for r in pts]
    lo_y = min([y for y in ys] + [iv[0] * 100 for iv in ivs if iv])
    hi_y = max([y for y in ys] + [iv[1] * 100 for iv in ivs if iv])
    xt, yt = _ticks(0, max(xs) * 1.08), _ticks(max(0.0, lo_y - 3), min(100.0, hi_y + 3))
    x0, x1, y0, y1 = xt[0], xt[-1], yt[0], yt[-1]

    def px(x):
        return LEFT + (x - x0) / (x1 - x0 or 1) * (W - LEFT - RIGHT)

    def py(y):
        return H - BOTTOM - (y - y0) / (y1 - y0 or 1) * (H - TOP - BOTTOM)

    out = [f'<svg viewBox="0 0 {W} {H}" role="img" aria-label="mIoU against latency, Pareto front dashed">']
    for t in xt:
        out.append(f'<line class="grid" x1="{px(t):.1f}" x2="{px(t):.1f}" y1="{TOP}" y2="{H - BOTTOM}"/>'
                   f'<text x="{px(t):.1f}" y="{H - BOTTOM + 16}" text-anchor="middle">{fmt(t)}</text>')
    for t in yt:
        out.append(f'<line class="grid" x1="{LEFT}" x2="{W - RIGHT}" y1="{py(t):.1f}" y2="{py(t):.1f}"/>'
                   f'<text x="{LEFT - 6}" y="{py(t) + 4:.1f}" text-anchor="end">{fmt(t)}</text>')
    out.append(f'<line class="axis" x1="{LEFT}" x2="{W - RIGHT}" y1="{H - BOTTOM}" y2="{H - BOTTOM}"/>'
               f'<line class="axis" x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{H - BOTTOM}"/>'
               f'<text x="{(LEFT + W - RIGHT) / 2}" y="{H - 8}" text-anchor="middle">latency p50 (ms)</text>'
               f'<text transform="translate(14 {(TOP + H - BOTTOM) / 2}) rotate(-90)" text-anchor="middle">mIoU (%)</text>')
    front = pareto_front(list(zip(xs, ys)))
    if len(front) > 1:
        path = f"M{px(xs[front[0]]):.1f},{py(ys[front[0]]):.1f}"
        for i in front[1:]:
            path += f" H{px(xs[i]):.1f} V{py(ys[i]):.1f}"
        out.append(f'<path class="front" d="{path}"/>')
    on_front = set(front)
    for k, (r, x, y, iv) in enumerate(zip(pts, xs, ys, ivs)):
        colour = hex_colour(colours[r["_label"]])
        backend = html.escape(r.get("backend") or "eager")
        if iv:
            out.append(f'<line class="bar" data-backend="{backend}" stroke="{colour}" x1="{px(x):.1f}" x2="{px(x):.1f}" '
                       f'y1="{py(iv[0] * 100):.1f}" y2="{py(iv[1] * 100):.1f}"/>')
        cls = "pt front-pt" if k in on_front else "pt"
        out.append(labelled_point(r["_label"], backend, px(x), py(y), colour, _tip(r), W, cls))
    out.append("</svg>")
    return '<div class="plot" id="sb-pareto">' + "".join(out) + '<div class="tip" hidden></div></div>'
