"""Report writer for ``segbench compare``: one folder a person can read.

:func:`write_report` takes the per-model measurements of a comparison run (accuracy, cost, speed,
memory), a few example predictions, and the run's settings and environment, and writes into one
folder:

``results.json``
    Everything, machine-readable (settings, env, rows, skipped inputs; NaN and inf become ``null``).
``results.csv``
    One row per model, flat scalar columns plus one ``iou_<class>`` column per class.
``pareto.png``
    mIoU (%) against median latency (ms), with the Pareto front (faster and more accurate) as a
    step line. Not written when no model has an mIoU (unlabelled images) or a latency.
``bars.png``
    Median latency (ms), weights size (MB) and peak memory (MiB), one bar per model.
``grid.png``
    Example images | ground truth | each model's colourised label map, with a class colour legend.
``report.md`` and ``report.html``
    The same content as Markdown (images linked by relative path) and as one self-contained HTML
    file (images inlined as base64 data URIs, inline CSS, no external resources).

Every file is written atomically: to a temporary file in the same folder, then ``os.replace``, so a
reader never sees a half-written file. Figures that are not produced this time (e.g. ``pareto.png``
for unlabelled data) are removed from the folder if an earlier run left them, so the folder never
shows a stale figure.

Units follow the names (see ``segbench.bench.size`` and ``segbench.bench.latency``): ``miou``,
``pixel_accuracy``, ``mean_accuracy`` and ``iou`` are fractions in [0, 1] (shown as percent with one
decimal); ``latency_ms_*`` in milliseconds per forward call of one batch; ``throughput_img_s`` in
images per second; ``size_mb`` in megabytes of 10**6 bytes; ``memory_mib`` in mebibytes (2**20
bytes); ``params_m`` in millions; ``gflops`` / ``gmacs`` in 10**9 operations, counted by
``torch.utils.flop_counter.FlopCounterMode`` where one multiply-add = 2 FLOPs.

Label convention: label maps hold int class indices; 255 (and, in ground truth, any value
``>= len(class_names)``) is "ignore" and is drawn black.
"""

from __future__ import annotations

import base64
import colorsys
import csv
import datetime as _dt
import html
import io
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from segbench.data.io import write_bytes_atomic

__all__ = ["CSV_COLUMNS", "colorize_labels", "display_name", "pareto_front", "write_report"]

IGNORE_INDEX = 255
MAX_TILE_W = 320  # px: widest an example tile gets in grid.png
MAX_TILE_H = 400  # px: tallest an example tile gets (tall images)

ACC_KEYS = ("miou", "pixel_accuracy", "mean_accuracy")
ROW_KEYS = (
    "model", "weights", "params_m", "size_mb", "size_mb_fp16", "gflops", "gmacs",
    "latency_ms_p50", "latency_ms_p90", "throughput_img_s", "memory_mib", "memory_kind",
    "pixel_accuracy", "mean_accuracy", "miou", "iou", "num_images", "error",
)  # fmt: skip
CSV_COLUMNS = (
    "model", "weights", "backend", "miou", "pixel_accuracy", "mean_accuracy", "agreement_miou", "pixel_agreement",
    "params_m", "size_mb", "size_mb_fp16", "gflops", "gmacs", "latency_ms_p50", "latency_ms_p90",
    "latency_ms_std", "throughput_img_s", "achieved_gflop_s", "peak_fraction", "memory_mib", "memory_reserved_mib",
    "memory_kind", "peak_rss_mib_total", "cpu_busy_before_pct", "num_images", "error",
)  # fmt: skip
"""Scalar columns of ``results.csv``, in order; ``iou_<class>`` columns follow."""

FILE_NAMES = {
    "results_json": "results.json",
    "results_csv": "results.csv",
    "pareto_png": "pareto.png",
    "bars_png": "bars.png",
    "grid_png": "grid.png",
    "report_md": "report.md",
    "report_html": "report.html",
}

_DASH = "–"  # shown for "not measured"


# --------------------------------------------------------------------------------------------
# Small pure helpers
# --------------------------------------------------------------------------------------------


def _num(value: Any) -> float | None:
    """Return ``value`` as a finite float, or None (None, NaN, inf, bools, non-numbers)."""
    if value is None or isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, float, np.integer, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else None
    return None


def _jsonable(obj: Any) -> Any:
    """Convert ``obj`` to plain JSON types: numpy scalars/arrays to Python, NaN/inf to None,
    paths and unknown objects to str, dict keys to str."""
    if obj is None or isinstance(obj, (str, bool)):
        return obj
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    return str(obj)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the Pareto-optimal points for (latency, mIoU): lower latency and higher mIoU win.

    A point is dominated when another point has latency <= and mIoU >= with at least one strictly
    better. Points with a missing or non-finite coordinate are never on the front. Identical points
    do not dominate each other, so both are kept.

    Args:
        points: ``(latency_ms, miou)`` pairs, any units as long as lower latency / higher mIoU is
            better.

    Returns:
        Indices into ``points`` of the non-dominated points, sorted by increasing latency (then
        decreasing mIoU, then index). Along this order both latency and mIoU strictly increase,
        except between identical points.
    """
    valid = []
    for i, p in enumerate(points):
        x, y = _num(p[0]), _num(p[1])
        if x is not None and y is not None:
            valid.append((i, x, y))
    front = []
    for i, xi, yi in valid:
        dominated = any(
            xj <= xi and yj >= yi and (xj < xi or yj > yi) for j, xj, yj in valid if j != i
        )
        if not dominated:
            front.append((xi, -yi, i))
    return [i for _, _, i in sorted(front)]


def _fallback_palette(n: int) -> list[tuple[int, int, int]]:
    """Deterministic, well-spread RGB colours for ``n`` classes (never pure black, which means
    "ignore"): hues walk the golden angle, saturation and value cycle through three levels."""
    colours = []
    for i in range(n):
        hue = (0.03 + i * 0.618033988749895) % 1.0
        sat = (0.75, 0.95, 0.55)[i % 3]
        val = (0.95, 0.70, 0.85)[(i // 3) % 3]
        r, g, b = colorsys.hsv_to_rgb(hue, sat, val)
        colours.append((round(r * 255), round(g * 255), round(b * 255)))
    return colours


def _palette_array(palette: Sequence[Sequence[int]] | None, n: int) -> np.ndarray:
    """``(max(n, len(palette)), 3)`` uint8 colour table; missing entries come from the fallback."""
    given = [tuple(int(c) for c in rgb[:3]) for rgb in (palette or [])]
    if len(given) < n:
        given += _fallback_palette(n)[len(given) :]
    if not given:
        return np.zeros((0, 3), np.uint8)
    return np.clip(np.asarray(given, dtype=np.int64), 0, 255).astype(np.uint8)


def colorize_labels(
    label: np.ndarray, palette: np.ndarray | Sequence[Sequence[int]], num_classes: int | None = None
) -> np.ndarray:
    """Colour a label map.

    Args:
        label: ``(H, W)`` integer class indices.
        palette: ``(K, 3)`` RGB colours, index i -> colour of class i.
        num_classes: Values ``>= num_classes`` (default ``K``), negative values and 255 are
            "ignore" and drawn black.

    Returns:
        ``(H, W, 3)`` uint8 RGB image.

    Raises:
        ValueError: If ``label`` is not 2-D.
    """
    label = np.asarray(label)
    if label.ndim != 2:
        raise ValueError(f"label map must be (H, W), got shape {label.shape}")
    pal = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
    n = len(pal) if num_classes is None else min(int(num_classes), len(pal))
    lab = label.astype(np.int64, copy=False)
    valid = (lab >= 0) & (lab < n) & (lab != IGNORE_INDEX)
    out = np.zeros(label.shape + (3,), np.uint8)
    out[valid] = pal[lab[valid]]
    return out


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def _fig_png(fig) -> bytes:
    """Render a matplotlib Figure to PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi, bbox_inches="tight", facecolor="white")
    return buf.getvalue()


def _pil_png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# Rows and classes
# --------------------------------------------------------------------------------------------


def display_name(model: str, backend: str | None, several: bool) -> str:
    """A row's name in tables and figures: ``model``, or ``model (backend)`` when the report holds more than
    eager PyTorch (``several``)."""
    return f"{model} ({backend})" if several and backend else model


def _normalise_row(row: dict, class_names: list[str] | None) -> dict:
    """Copy of ``row`` with every known key present (None when missing), iou as dict of
    name -> finite float | None, and the error as a string or None."""
    out = {k: row.get(k) for k in ROW_KEYS}
    out.update({k: v for k, v in row.items() if k not in out})
    out["model"] = str(row.get("model") or "?")
    iou = row.get("iou")
    if isinstance(iou, dict):
        out["iou"] = {str(k): _num(v) for k, v in iou.items()}
    elif isinstance(iou, (list, tuple, np.ndarray)):
        names = class_names or [str(i) for i in range(len(iou))]
        out["iou"] = {names[i] if i < len(names) else str(i): _num(v) for i, v in enumerate(iou)}
    else:
        out["iou"] = None
    err = row.get("error")
    out["error"] = str(err) if err not in (None, "") else None
    return out


def _class_list(class_names: list[str] | None, rows: list[dict]) -> list[str]:
    """Class names to report: the given list, else the union of the rows' IoU keys in order."""
    if class_names:
        return [str(c) for c in class_names]
    names: list[str] = []
    for r in rows:
        for k in r["iou"] or {}:
            if k not in names:
                names.append(k)
    return names


def _model_colours(models: list[str]) -> dict[str, tuple]:
    """One matplotlib colour per model, the same in every figure."""
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if len(models) <= 10 else "tab20"]
    return {m: cmap(i % cmap.N) for i, m in enumerate(models)}


# --------------------------------------------------------------------------------------------
# Number formatting
# --------------------------------------------------------------------------------------------


def _fmt_pct(v: Any) -> str:
    v = _num(v)
    return _DASH if v is None else f"{v * 100:.1f}"


def _fmt(v: Any) -> str:
    """Compact number: 3 significant digits for small values, no decimals from 100 up."""
    if isinstance(v, str):
        return v
    x = _num(v)
    if x is None:
        return _DASH
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    a = abs(x)
    if a >= 100:
        return f"{x:.0f}"
    if a >= 10:
        return f"{x:.1f}"
    if a >= 0.01 or a == 0:
        return f"{x:.2f}"
    return f"{x:.2g}"


def _fmt_value(v: Any) -> str:
    """Settings / environment value as one line of text."""
    if v is None:
        return _DASH
    if isinstance(v, (float, np.floating)):
        return repr(float(v)) if math.isfinite(float(v)) else _DASH
    if isinstance(v, (dict, list, tuple)):
        return json.dumps(_jsonable(v), ensure_ascii=False)
    return str(v).replace("\n", " ")


def _explain_memory_kind(kind: str) -> str:
    """One sentence on what a ``memory_kind`` value measures."""
    k = kind.lower()
    if "reserved" in k:
        return ("peak CUDA memory reserved by PyTorch's caching allocator during inference "
                "(`torch.cuda.max_memory_reserved`)")
    if "cuda" in k or "gpu" in k:
        return ("peak CUDA memory allocated by PyTorch tensors during inference "
                "(`torch.cuda.max_memory_allocated`), weights included")
    if "rss" in k:
        return "peak resident set size (RSS) of the process during inference, as seen by the OS"
    if "tracemalloc" in k or "python" in k:
        return "peak Python heap allocation during inference (`tracemalloc`)"
    if "estimate" in k or "activation" in k:
        return "estimated from the sizes of the weights and intermediate tensors, not measured"
    return f"peak memory as measured by `segbench.bench.memory` (kind `{kind}`)"


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


def _pareto_png(rows: list[dict], colours: dict, settings: dict) -> tuple[bytes | None, str, list[str]]:
    """Draw pareto.png. Returns (png bytes or None, note for the report, models on the front)."""
    with_miou = [r for r in rows if _num(r["miou"]) is not None]
    if not with_miou:
        note = "No model has an mIoU (no labels: accuracy not measured), so there is no accuracy-vs-latency plot."
        return None, note, []
    pts = [r for r in with_miou if _num(r["latency_ms_p50"]) is not None]
    if not pts:
        return None, "No model has a measured latency, so there is no accuracy-vs-latency plot.", []
    from matplotlib.figure import Figure

    xs = [_num(r["latency_ms_p50"]) for r in pts]
    ys = [_num(r["miou"]) * 100 for r in pts]
    front = pareto_front(list(zip(xs, ys)))
    on_front = set(front)

    fig = Figure(figsize=(7.0, 4.8), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    ax.grid(True, color="#dddddd", linewidth=0.8)
    ax.set_axisbelow(True)
    if len(front) > 1:
        fx = [xs[i] for i in front]
        fy = [ys[i] for i in front]
        ax.step(fx, fy, where="post", color="#444444", linewidth=1.5, linestyle="--", zorder=2,
                label="Pareto front (no model is both faster and more accurate)")
    for i, r in enumerate(pts):
        best = i in on_front
        ax.scatter([xs[i]], [ys[i]], s=90 if best else 55, color=colours[r["_label"]],
                   edgecolors="black" if best else "none", linewidths=1.2, alpha=1.0 if best else 0.55, zorder=3)
        ax.annotate(r["_label"], (xs[i], ys[i]), xytext=(6, 5), textcoords="offset points", fontsize=8.5,
                    fontweight="bold" if best else "normal", color="#222222", zorder=4)
    if len(front) == 1:
        ax.scatter([], [], s=90, color="white", edgecolors="black", label="Pareto-optimal (outlined)")
    if min(xs) > 0 and max(xs) / min(xs) > 20:
        ax.set_xscale("log")
    ax.margins(x=0.18, y=0.15)
    ax.set_xlabel("Latency p50 (ms per forward call)  ← faster")
    ax.set_ylabel("mIoU (%)  ↑ more accurate")
    sub = ", ".join(
        f"{k} {settings[k]}" for k in ("device", "input_size", "batch") if settings.get(k) not in (None, "")
    )
    ax.set_title("mIoU vs latency" + (f" ({sub})" if sub else ""), fontsize=11)
    ax.legend(loc="lower right", fontsize=8, frameon=True)
    fig.tight_layout()
    names = [pts[i]["_label"] for i in front]
    missing = [r["_label"] for r in with_miou if _num(r["latency_ms_p50"]) is None]
    note = "Up and to the left is better; outlined points joined by the dashed step line form the Pareto front."
    if missing:
        note += " Not plotted (no latency): " + ", ".join(missing) + "."
    return _fig_png(fig), note, names


def _bars_png(rows: list[dict], colours: dict) -> tuple[bytes | None, str]:
    """Draw bars.png (latency, size, memory). Returns (png bytes or None, note)."""
    metrics = [
        ("latency_ms_p50", "Latency p50 (ms)"),
        ("size_mb", "Weights size (MB)"),
        ("memory_mib", "Peak memory (MiB)"),
    ]
    if not rows or all(_num(r[k]) is None for r in rows for k, _ in metrics):
        return None, "No latency, size or memory was measured, so there is no bar chart."
    from matplotlib.figure import Figure

    kinds = sorted({str(r["memory_kind"]) for r in rows if r.get("memory_kind") and _num(r["memory_mib"]) is not None})
    models = [r["_label"] for r in rows]
    n = len(models)
    fig = Figure(figsize=(12.5, 1.3 + 0.42 * n), dpi=100)
    axes = fig.subplots(1, 3, sharey=True)
    ypos = np.arange(n)
    for ax, (key, label) in zip(axes, metrics):
        vals = [_num(r[key]) for r in rows]
        top = max([v for v in vals if v is not None], default=1.0) or 1.0
        for y, r, v in zip(ypos, rows, vals):
            if v is None:
                failed = bool(r["error"])
                ax.text(top * 0.03, y, "error" if failed else "n/a", va="center", fontsize=8,
                        color="#c0392b" if failed else "#888888")
                continue
            ax.barh([y], [v], color=colours[r["_label"]], height=0.65)
            ax.text(v + top * 0.015, y, _fmt(v), va="center", fontsize=8)
        ax.set_xlim(0, top * 1.22)
        title = label
        if key == "memory_mib" and kinds:
            title += "\n" + ", ".join(kinds)
        ax.set_title(title, fontsize=10)
        ax.grid(True, axis="x", color="#e3e3e3")
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    axes[0].set_yticks(ypos, models, fontsize=9)
    axes[0].set_ylim(n - 0.5, -0.5)  # first model on top; rows without a bar keep their slot
    fig.suptitle("Speed, size and memory (shorter is better)", fontsize=11)
    fig.tight_layout()
    return _fig_png(fig), "Shorter bars are better; n/a = not measured."


def _font(size: int, bold: bool = False) -> ImageFont.ImageFont:
    """DejaVu Sans shipped with matplotlib (same look everywhere), else Pillow's default font."""
    try:
        from matplotlib import font_manager

        props = font_manager.FontProperties(family="DejaVu Sans", weight="bold" if bold else "normal")
        path = font_manager.findfont(props, fallback_to_default=False)
        return ImageFont.truetype(path, size)
    except Exception:  # pragma: no cover - depends on the installation
        try:
            return ImageFont.load_default(size)
        except TypeError:
            return ImageFont.load_default()


def _fit_text(draw: ImageDraw.ImageDraw, text: str, font, max_w: int) -> str:
    """Shorten ``text`` with an ellipsis until it fits ``max_w`` px."""
    if draw.textlength(text, font=font) <= max_w:
        return text
    while text and draw.textlength(text + "…", font=font) > max_w:
        text = text[:-1]
    return text + "…"


def _as_rgb(image: Any) -> np.ndarray:
    """Example image as ``(H, W, 3)`` uint8 (grey and RGBA accepted; floats in [0, 1] scaled)."""
    a = np.asarray(image)
    if a.ndim == 2:
        a = np.stack([a] * 3, axis=-1)
    if a.ndim != 3:
        raise ValueError(f"grid image must be (H, W, 3), got shape {a.shape}")
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    a = a[..., :3]
    if a.dtype != np.uint8:
        a = a.astype(np.float64)
        if a.size and np.nanmax(a) <= 1.0:
            a = a * 255.0
        a = np.clip(np.nan_to_num(a), 0, 255).astype(np.uint8)
    return a


def _tile_size(h: int, w: int) -> tuple[int, int]:
    """Tile (width, height) for an (h, w) example: shrunk to fit MAX_TILE_W x MAX_TILE_H, or
    enlarged by an integer factor (crisp pixels) when it is small."""
    s = min(MAX_TILE_W / w, MAX_TILE_H / h)
    s = s if s < 1 else max(1, math.floor(s))
    return max(1, round(w * s)), max(1, round(h * s))


def _grid_image(grid: list[dict], model_order: list[str], classes: list[str], class_names_given: bool,
                palette: Sequence[Sequence[int]] | None) -> Image.Image:
    """Compose grid.png: one row per example, columns image | ground truth | models, legend below."""
    models = [m for m in model_order if any(m in (ex.get("preds") or {}) for ex in grid)]
    for ex in grid:
        models += [m for m in (ex.get("preds") or {}) if m not in models]
    has_gt = any(ex.get("target") is not None for ex in grid)
    columns = ["image"] + (["ground truth"] if has_gt else []) + models

    # Classes to draw: the given names decide what is "ignore"; without names, any value < 255.
    max_label = -1
    for ex in grid:
        for lab in [ex.get("target")] + list((ex.get("preds") or {}).values()):
            if lab is not None:
                a = np.asarray(lab)
                a = a[(a >= 0) & (a != IGNORE_INDEX)]
                if a.size:
                    max_label = max(max_label, int(a.max()))
    n_cls = len(classes) if class_names_given else max(len(classes), max_label + 1)
    pal = _palette_array(palette, n_cls)

    prepared = []
    for ex in grid:
        img = _as_rgb(ex["image"])
        h, w = img.shape[:2]
        tw, th = _tile_size(h, w)
        tiles = [Image.fromarray(img).resize((tw, th), Image.LANCZOS if tw < w else Image.NEAREST)]
        captions = [str(ex.get("name", ""))]
        target = ex.get("target")
        target = None if target is None else np.asarray(target)
        if has_gt:
            if target is None:
                tiles.append(None)
            else:
                tiles.append(Image.fromarray(colorize_labels(target, pal, n_cls)).resize((tw, th), Image.NEAREST))
            captions.append("")
        preds = ex.get("preds") or {}
        for m in models:
            p = preds.get(m)
            if p is None:
                tiles.append(None)
                captions.append("")
                continue
            p = np.asarray(p)
            tiles.append(Image.fromarray(colorize_labels(p, pal, n_cls)).resize((tw, th), Image.NEAREST))
            cap = ""
            if target is not None and p.shape == target.shape:
                valid = (target >= 0) & (target < n_cls) & (target != IGNORE_INDEX)
                if valid.any():
                    cap = f"pixel acc {100.0 * float((p[valid] == target[valid]).mean()):.1f}%"
            captions.append(cap)
        prepared.append((tw, th, tiles, captions))

    margin, gap = 10, 8
    col_w = max(160, max(tw for tw, _, _, _ in prepared))
    f_head, f_cap, f_leg = _font(15, bold=True), _font(12), _font(12)
    head_h, cap_h = 26, 18
    width = 2 * margin + len(columns) * col_w + (len(columns) - 1) * gap

    # Legend entries: classes that appear in any drawn map, plus "ignore" when the ground truth has it.
    present: set[int] = set()
    has_ignore = False
    for ex in grid:
        for lab in [ex.get("target")] + list((ex.get("preds") or {}).values()):
            if lab is not None:
                a = np.asarray(lab).astype(np.int64)
                present.update(int(v) for v in np.unique(a[(a >= 0) & (a < n_cls) & (a != IGNORE_INDEX)]))
        t = ex.get("target")
        if t is not None:
            a = np.asarray(t).astype(np.int64)
            has_ignore |= bool(((a < 0) | (a >= n_cls) | (a == IGNORE_INDEX)).any())
    entries = [
        (tuple(int(c) for c in pal[i]), classes[i] if i < len(classes) else f"class {i}") for i in sorted(present)
    ]
    if has_ignore:
        entries.append(((0, 0, 0), "ignore"))

    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    sw, row_h = 14, 20
    legend_lines: list[list[tuple[tuple, str, int]]] = [[]]
    x = margin + measure.textlength("Classes:", font=f_head) + 12
    x0 = x
    for colour, name in entries:
        w_entry = sw + 5 + int(measure.textlength(name, font=f_leg)) + 16
        if x + w_entry > width - margin and legend_lines[-1]:
            legend_lines.append([])
            x = x0
        legend_lines[-1].append((colour, name, int(x)))
        x += w_entry
    legend_h = (12 + row_h * len(legend_lines)) if entries else 0

    height = margin + head_h + sum(cap_h + th + gap for _, th, _, _ in prepared) + legend_h + margin
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    col_x = [margin + c * (col_w + gap) for c in range(len(columns))]
    for c, name in enumerate(columns):
        text = _fit_text(draw, name, f_head, col_w)
        tw_ = draw.textlength(text, font=f_head)
        draw.text((col_x[c] + (col_w - tw_) / 2, margin + 3), text, fill=(20, 20, 20), font=f_head)
    y = margin + head_h
    for tw, th, tiles, captions in prepared:
        for c, (tile, cap) in enumerate(zip(tiles, captions)):
            x = col_x[c] + (col_w - tw) // 2
            if cap:
                text = _fit_text(draw, cap, f_cap, col_w)
                draw.text((x if c == 0 else col_x[c] + (col_w - draw.textlength(text, font=f_cap)) / 2, y + 2),
                          text, fill=(70, 70, 70), font=f_cap)
            if tile is None:
                draw.rectangle([x, y + cap_h, x + tw - 1, y + cap_h + th - 1],
                               fill=(236, 236, 236), outline=(200, 200, 200))
                text = _fit_text(draw, "no label" if c == 1 and has_gt else "no prediction", f_cap, tw - 4)
                draw.text((x + (tw - draw.textlength(text, font=f_cap)) / 2, y + cap_h + th / 2 - 7), text,
                          fill=(140, 140, 140), font=f_cap)
            else:
                canvas.paste(tile, (x, y + cap_h))
                draw.rectangle([x - 1, y + cap_h - 1, x + tw, y + cap_h + th], outline=(190, 190, 190))
        y += cap_h + th + gap
    if entries:
        y += 6
        draw.text((margin, y + 1), "Classes:", fill=(20, 20, 20), font=f_head)
        for line in legend_lines:
            for colour, name, lx in line:
                draw.rectangle([lx, y + 3, lx + sw, y + 3 + sw], fill=colour, outline=(120, 120, 120))
                draw.text((lx + sw + 5, y + 3), name, fill=(30, 30, 30), font=f_leg)
            y += row_h
    return canvas


# --------------------------------------------------------------------------------------------
# Document model: one list of blocks rendered both to Markdown and to HTML
# --------------------------------------------------------------------------------------------


@dataclass
class _Table:
    headers: list[str]
    rows: list[list[str]]
    align: list[str]  # "l" or "r" per column
    bold: set[tuple[int, int]] = field(default_factory=set)  # (row, col) cells to emphasise


_INLINE = re.compile(r"(`[^`]*`)")


def _inline_html(text: str) -> str:
    """Tiny inline Markdown -> HTML: `code` and **bold**; everything else escaped."""
    parts = []
    for chunk in _INLINE.split(text):
        if len(chunk) >= 2 and chunk.startswith("`") and chunk.endswith("`"):
            parts.append(f"<code>{html.escape(chunk[1:-1])}</code>")
        else:
            parts.append(re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html.escape(chunk)))
    return "".join(parts)


def _md_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("\r", " ")


def _render_md(blocks: list[tuple]) -> str:
    out: list[str] = []
    for b in blocks:
        kind = b[0]
        if kind == "h":
            out.append("#" * b[1] + " " + b[2])
        elif kind == "p":
            out.append(b[1])
        elif kind == "ul":
            out.append("\n".join(f"- {item}" for item in b[1]))
        elif kind == "code":
            fence = "```"
            while fence in b[1]:
                fence += "`"
            out.append(f"{fence}text\n{b[1]}\n{fence}")
        elif kind == "img":
            out.append(f"![{b[1]}]({b[2]})")
        elif kind == "table":
            t: _Table = b[1]
            lines = ["| " + " | ".join(_md_cell(h) for h in t.headers) + " |",
                     "|" + "|".join("---:" if a == "r" else ":---" for a in t.align) + "|"]
            for r, row in enumerate(t.rows):
                cells = [(f"**{_md_cell(c)}**" if (r, j) in t.bold else _md_cell(c)) for j, c in enumerate(row)]
                lines.append("| " + " | ".join(cells) + " |")
            out.append("\n".join(lines))
    return "\n\n".join(out) + "\n"


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#1f2328;
  background:#fff;margin:0;line-height:1.5}
main{max-width:1200px;margin:0 auto;padding:24px}
h1{font-size:1.8em;border-bottom:1px solid #d0d7de;padding-bottom:.3em}
h2{font-size:1.35em;border-bottom:1px solid #eaeef2;padding-bottom:.2em;margin-top:1.6em}
h3{font-size:1.1em}
.table-wrap{overflow-x:auto}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
th,td{border:1px solid #d0d7de;padding:4px 10px;vertical-align:top}
th{background:#f6f8fa}
tr:nth-child(even) td{background:#fafbfc}
td.r,th.r{text-align:right;font-variant-numeric:tabular-nums}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.9em;
  background:#f3f4f6;padding:.1em .3em;border-radius:4px}
pre{background:#f6f8fa;padding:10px;overflow-x:auto;border-radius:6px}
pre code{background:none;padding:0}
figure{margin:1em 0}
img{max-width:100%;height:auto;border:1px solid #eaeef2}
"""


def _render_html(blocks: list[tuple], title: str, images: dict[str, bytes]) -> str:
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{html.escape(title)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>", "<main>"]
    for b in blocks:
        kind = b[0]
        if kind == "h":
            out.append(f"<h{b[1]}>{_inline_html(b[2])}</h{b[1]}>")
        elif kind == "p":
            out.append(f"<p>{_inline_html(b[1])}</p>")
        elif kind == "ul":
            out.append("<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in b[1]) + "</ul>")
        elif kind == "code":
            out.append(f"<pre><code>{html.escape(b[1])}</code></pre>")
        elif kind == "img":
            data = base64.b64encode(images[b[2]]).decode("ascii")
            out.append(f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(b[1])}"></figure>')
        elif kind == "table":
            t: _Table = b[1]
            cls = [' class="r"' if a == "r" else "" for a in t.align]
            rows = ["<tr>" + "".join(f"<th{cls[j]}>{html.escape(h)}</th>" for j, h in enumerate(t.headers)) + "</tr>"]
            for r, row in enumerate(t.rows):
                cells = []
                for j, c in enumerate(row):
                    text = html.escape(c)
                    if (r, j) in t.bold:
                        text = f"<strong>{text}</strong>"
                    cells.append(f"<td{cls[j]}>{text}</td>")
                rows.append("<tr>" + "".join(cells) + "</tr>")
            out.append('<div class="table-wrap"><table><thead>' + rows[0] + "</thead><tbody>" + "".join(rows[1:])
                       + "</tbody></table></div>")
    out += ["</main>", "</body>", "</html>"]
    return "\n".join(out) + "\n"


def _kv_table(d: dict) -> _Table:
    return _Table(["Key", "Value"], [[str(k), _fmt_value(v)] for k, v in d.items()], ["l", "l"])


def _best_cells(table_rows: list[dict], cols: list[tuple[str, str, Any, str | None]]) -> set[tuple[int, int]]:
    """(row, col) of the best value in each column that has a direction ("max"/"min"), when at
    least two models (without errors) have a value."""
    bold = set()
    for j, (_, key, _, direction) in enumerate(cols):
        if direction is None:
            continue
        vals = [(i, _num(r.get(key))) for i, r in enumerate(table_rows) if not r["error"]]
        vals = [(i, v) for i, v in vals if v is not None]
        if len(vals) < 2:
            continue
        best = (max if direction == "max" else min)(v for _, v in vals)
        bold.update((i, j) for i, v in vals if v == best)
    return bold


def _variant_blocks(rows: list[dict]) -> list[tuple]:
    """Section "Test-time augmentation and CRF": per model, mIoU and ms per image of each step of the
    inference chain (plain, +TTA, +CRF) that ``evaluate`` measured, and what each step adds."""
    with_steps = [r for r in rows if isinstance(r.get("variants"), list) and len(r["variants"]) > 1]
    if not with_steps:
        return []
    t_rows = []
    for r in with_steps:
        base = r["variants"][0]
        for v in r["variants"]:
            miou, base_miou = _num(v.get("miou")), _num(base.get("miou"))
            delta = _DASH if v is base or miou is None or base_miou is None else f"{(miou - base_miou) * 100:+.1f}"
            extra = _num(v.get("extra_ms_per_image"))
            t_rows.append([r["_label"], str(v.get("name")), _fmt_pct(miou), delta, _fmt(v.get("ms_per_image")),
                           _DASH if v is base or extra is None else f"{extra:+.1f}"])
    table = _Table(["Model", "Step", "mIoU (%)", "Δ mIoU (points)", "Time (ms/image)", "Extra (ms/image)"],
                   t_rows, ["l", "l", "r", "r", "r", "r"])
    how = sorted({str(r["inference"]) for r in with_steps if r.get("inference")})
    return [("h", 2, "Test-time augmentation and CRF"), ("table", table),
            ("p", "Each model segmented every image several ways in one pass: **plain** (the inference mode alone"
                  + (f": {'; '.join(how)}" if how else "") + "), **tta** (probabilities averaged over the "
                  "scales and flips), **crf** / **tta+crf** (dense CRF on the softmax output, arXiv 1210.5644). "
                  "Time: mean wall-clock milliseconds per image to produce the label map on the Settings device "
                  "(a +crf step includes the step it refines); Extra: over plain. The main table's mIoU is the "
                  "last step's; its latency is one forward pass.")]


def _build_blocks(*, title: str, rows: list[dict], classes: list[str], has_acc: bool, env: dict,
                  settings: dict, skipped: list[dict], figures: dict[str, tuple[bytes | None, str]],
                  front: list[str], generated: str) -> list[tuple]:
    B: list[tuple] = [("h", 1, title)]
    n_ok = sum(1 for r in rows if not r["error"])
    intro = f"{len(rows)} model(s) compared on the same images and hardware ({n_ok} ran, {len(rows) - n_ok} failed)."
    if "date" not in env:
        intro += f" Generated {generated}."
    B.append(("p", intro))
    if not rows:
        B.append(("p", "No models were compared."))
    elif not has_acc:
        reason = settings.get("accuracy_note") or "No labels: accuracy not measured."
        B.append(("p", f"**{reason}** Only speed, size and memory are compared, and the masks are shown side by side."))
    else:
        ok = [r for r in rows if _num(r["miou"]) is not None]
        if ok:
            top = max(ok, key=lambda r: _num(r["miou"]))
            line = f"Best mIoU: **{top['_label']}** ({_fmt_pct(top['miou'])}%)."
            fast = [r for r in rows if _num(r["latency_ms_p50"]) is not None and not r["error"]]
            if fast:
                f = min(fast, key=lambda r: _num(r["latency_ms_p50"]))
                line += f" Fastest: **{f['_label']}** ({_fmt(f['latency_ms_p50'])} ms p50)."
            if front:
                line += " Pareto-optimal (no other model is both faster and more accurate): " + ", ".join(front) + "."
            B.append(("p", line))

    B += [("h", 2, "Settings"), ("table", _kv_table(settings)) if settings else ("p", "None recorded.")]
    B += [("h", 2, "Environment"), ("table", _kv_table(env)) if env else ("p", "None recorded.")]

    # Main table. (header, key, formatter, best direction)
    kinds = sorted({str(r["memory_kind"]) for r in rows if r.get("memory_kind")})
    mixed_kinds = len(kinds) > 1
    cols: list[tuple[str, str, Any, str | None]] = [
        ("Model", "model", str, None),
    ]
    if any(r.get("weights") not in (None, "", r["model"]) for r in rows):  # the tag already names them
        cols.append(("Weights", "weights", lambda v: _DASH if v in (None, "") else str(v), None))
    if has_acc:
        cols += [("mIoU (%)", "miou", _fmt_pct, "max"), ("Pixel acc (%)", "pixel_accuracy", _fmt_pct, "max"),
                 ("Mean acc (%)", "mean_accuracy", _fmt_pct, "max")]
    if any(_num(r.get("agreement_miou")) is not None for r in rows):
        cols.append(("Agreement mIoU (%)", "agreement_miou", _fmt_pct, None))
    cols += [("Params (M)", "params_m", _fmt, None), ("Size (MB)", "size_mb", _fmt, "min")]
    if any(_num(r["size_mb_fp16"]) is not None for r in rows):
        cols.append(("Size fp16 (MB)", "size_mb_fp16", _fmt, "min"))
    cols += [("GFLOPs", "gflops", _fmt, None), ("Latency p50 (ms)", "latency_ms_p50", _fmt, "min"),
             ("Latency p90 (ms)", "latency_ms_p90", _fmt, "min"),
             ("Throughput (img/s)", "throughput_img_s", _fmt, "max"),
             ("Memory (MiB)", "memory_mib", _fmt, "min")]
    if has_acc and any(r.get("num_images") is not None for r in rows):
        cols.append(("Images", "num_images", lambda v: _DASH if v is None else str(v), None))
    table_rows = []
    for r in rows:
        cells = []
        for header, key, fmt, _ in cols:
            if key == "model":
                cells.append(r["_label"] + (" (failed)" if r["error"] else ""))
            elif key == "memory_mib" and mixed_kinds and _num(r["memory_mib"]) is not None and r.get("memory_kind"):
                cells.append(f"{_fmt(r['memory_mib'])} ({r['memory_kind']})")
            else:
                cells.append(fmt(r.get(key)))
        table_rows.append(cells)
    main = _Table([c[0] for c in cols], table_rows, ["l", "l"] + ["r"] * (len(cols) - 2), _best_cells(rows, cols))
    B += [("h", 2, "Results"), ("table", main)]

    notes = []
    if has_acc:
        split = settings.get("split")
        notes.append("**mIoU, Pixel acc, Mean acc** are percentages (0–100) over the labelled images"
                     + (f" of the `{split}` split" if split else "") + ". IoU = TP / (TP + FP + FN) per class; "
                     "mIoU averages it over the classes present in the labels or the predictions (a class absent "
                     "from both has no IoU and is left out). Pixel acc = correct pixels / labelled pixels; Mean acc "
                     "= per-class accuracy averaged over classes. Ignored pixels (void) are excluded.")
    fp16_col = any(c[1] == "size_mb_fp16" for c in cols)
    notes.append("**Params (M)**: parameters in millions. **Size (MB)**: the weights (state_dict) serialised "
                 "with safetensors, in megabytes of 10^6 bytes, fp32" + (" (fp16 in its own column)" if fp16_col else "")
                 + ".")
    notes.append("**GFLOPs**: 10^9 floating-point operations for one forward pass at the input size in Settings, "
                 "counted by `torch.utils.flop_counter.FlopCounterMode`, where one multiply-add = 2 FLOPs "
                 "(so GMACs = GFLOPs / 2; GMACs are in results.csv). Only convolutions, matmuls and attention are "
                 "counted. torchvision's published \"GFLOPS\" are multiply-adds, comparable with GMACs, not GFLOPs.")
    batch = settings.get("batch", settings.get("batch_size"))
    notes.append("**Latency p50 / p90 (ms)**: median and 90th percentile wall-clock time of one forward call"
                 + (f" on a batch of {batch}" if batch is not None else " on one batch") + " after warm-up, in "
                 "milliseconds (CUDA synchronised around each call). **Throughput (img/s)**: images per second = "
                 "batch / median latency.")
    if kinds:
        notes.append("**Memory (MiB)**: mebibytes (2^20 bytes); "
                     + "; ".join(f"`{k}` = {_explain_memory_kind(k)}" for k in kinds) + ".")
    else:
        notes.append("**Memory (MiB)**: peak memory in mebibytes (2^20 bytes) during inference.")
    if any(c[1] == "agreement_miou" for c in cols):
        ref = next((r.get("agreement_reference") for r in rows if r.get("agreement_reference")), "the first backend")
        notes.append(f"**Agreement mIoU (%)**: each backend's label maps scored as mIoU against {ref}'s on the same "
                     "images (100 = identical predictions); it shows a backend that segments differently even "
                     "without labels.")
    backend_notes = [f"{r['_label']}: {r['backend_notes']}" for r in rows if r.get("backend_notes")]
    if backend_notes:
        notes.append("**Backends**: " + "; ".join(backend_notes) + ".")
    notes.append(f"{_DASH} = not measured (or the model failed). **Bold** = best value in its column.")
    B.append(("ul", notes))
    B += _variant_blocks(rows)

    if has_acc and classes:
        iou_rows = [r for r in rows if r["iou"]]
        if iou_rows:
            t_rows, bold = [], set()
            for i, c in enumerate(classes):
                vals = [_num((r["iou"] or {}).get(c)) for r in iou_rows]
                t_rows.append([c] + [_fmt_pct(v) for v in vals])
                fin = [v for v in vals if v is not None]
                if len(fin) >= 2:
                    bold.update((i, j + 1) for j, v in enumerate(vals) if v == max(fin))
            B += [("h", 2, "Per-class IoU (%)"),
                  ("table", _Table(["Class"] + [r["_label"] for r in iou_rows], t_rows,
                                   ["l"] + ["r"] * len(iou_rows), bold)),
                  ("p", f"IoU in percent, one column per model; **bold** = best per class; {_DASH} = class absent "
                        "from both labels and predictions (no IoU, left out of mIoU).")]
    elif not has_acc:
        B += [("h", 2, "Per-class IoU (%)"), ("p", "No labels: accuracy not measured.")]

    for key, heading, alt in (("pareto_png", "Accuracy vs latency", "mIoU vs latency with Pareto front"),
                              ("bars_png", "Speed, size and memory", "bar charts of latency, size and memory"),
                              ("grid_png", "Examples", "example predictions side by side")):
        data, note = figures[key]
        B.append(("h", 2, heading))
        if data is not None:
            B.append(("img", alt, FILE_NAMES[key]))
        if note:
            B.append(("p", note))

    failed = [r for r in rows if r["error"]]
    if failed:
        B.append(("h", 2, "Errors"))
        B.append(("p", "These models failed; their rows above show only what was measured before the failure."))
        for r in failed:
            B += [("h", 3, r["_label"]), ("code", r["error"])]

    B.append(("h", 2, "Skipped inputs"))
    if skipped:
        B.append(("p", f"{len(skipped)} input file(s) could not be used and were skipped:"))
        cells = [[str(s.get("file", "")), str(s.get("reason", ""))] for s in skipped]
        B.append(("table", _Table(["File", "Reason"], cells, ["l", "l"])))
    else:
        B.append(("p", "None."))
    B.append(("p", "Files: `results.json` (everything), `results.csv` (one row per model), figures as PNG next "
                   "to this report."))
    return B


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def write_report(
    out_dir: str | Path,
    *,
    rows: list[dict],
    class_names: list[str] | None,
    palette: list[tuple[int, int, int]] | None,
    grid: list[dict] | None,
    env: dict,
    settings: dict,
    skipped: list[dict] | None = None,
    title: str = "segbench compare",
) -> dict[str, Path]:
    """Write the comparison report folder.

    Args:
        out_dir: Folder to write into; created (with parents) if missing. Files of the same names
            are replaced atomically.
        rows: One dict per model. Keys (each may be missing or None when not measured): ``model``
            (str), ``weights`` (tag or path), ``params_m`` (millions), ``size_mb``, ``size_mb_fp16``
            (MB = 10**6 bytes), ``gflops``, ``gmacs`` (10**9 ops per forward pass),
            ``latency_ms_p50``, ``latency_ms_p90`` (ms per forward call), ``throughput_img_s``
            (images/s), ``memory_mib`` (MiB = 2**20 bytes), ``memory_kind`` (str, what memory was
            measured), ``pixel_accuracy``, ``mean_accuracy``, ``miou`` (fractions in [0, 1]),
            ``iou`` (class name -> fraction or None), ``num_images`` (int), ``error`` (str; the
            model failed but is still reported). Extra keys are kept in results.json.
        class_names: Class names, index i = class i; None to use the rows' ``iou`` keys (and
            ``class i`` in the legend).
        palette: RGB colours, index i = class i; None (or too short) -> a deterministic
            generated palette.
        grid: Examples for grid.png, each ``{"name": str, "image": uint8 (H, W, 3),
            "target": int (H, W) or None, "preds": {model: int (H, W)}}``. None or empty -> no
            grid.png. Target values 255 or ``>= len(class_names)`` are "ignore", drawn black.
        env: Environment (torch version, CPU, threads, device, date, ...), shown as a table.
        settings: Run settings (input size, batch, device, data path, split, number of images),
            shown as a table; ``device``, ``input_size``, ``batch`` and ``split`` are also quoted
            in figures and notes when present.
        skipped: ``{"file": str, "reason": str}`` for each input skipped as bad.
        title: Title of report.md / report.html.

    Returns:
        Name -> path of each file written: ``results_json``, ``results_csv``, ``report_md``,
        ``report_html``, and ``pareto_png``, ``bars_png``, ``grid_png`` when drawn.

    Raises:
        OSError: If the folder cannot be created or written.
        ValueError: If a grid example's arrays have an impossible shape.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names_given = [str(c) for c in class_names] if class_names else None
    rows_n = [_normalise_row(r, names_given) for r in rows]
    skipped_n = [
        {**s, "file": str(s.get("file", "")), "reason": str(s.get("reason", ""))} for s in (skipped or [])
    ]
    classes = _class_list(names_given, rows_n)
    has_acc = any(_num(r[k]) is not None for r in rows_n for k in ACC_KEYS)
    # Display label: the model name, plus the weights when one architecture appears more than once.
    used = {r.get("backend") or "eager" for r in rows_n}
    several = len(used) > 1 or used != {"eager"}
    counts: dict[str, int] = {}
    for r in rows_n:
        r["_name"] = display_name(r["model"], r.get("backend"), several)
        counts[r["_name"]] = counts.get(r["_name"], 0) + 1
    seen: set[str] = set()
    for i, r in enumerate(rows_n):
        label = r["_name"] if counts[r["_name"]] == 1 else f"{r['_name']} [{r['weights'] or i}]"
        while label in seen:
            label += f" #{i}"
        seen.add(label)
        r["_label"] = label
    colours = _model_colours([r["_label"] for r in rows_n])
    generated = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

    written: dict[str, Path] = {}
    figures: dict[str, tuple[bytes | None, str]] = {}
    pareto, pareto_note, front = _pareto_png(rows_n, colours, settings or {})
    figures["pareto_png"] = (pareto, pareto_note)
    figures["bars_png"] = _bars_png(rows_n, colours)
    if grid:
        img = _grid_image(list(grid), [r["_name"] for r in rows_n], classes, names_given is not None, palette)
        gt = ", ground truth" if any(ex.get("target") is not None for ex in grid) else ""
        note = (f"Columns: input image{gt}, then each model's prediction. Colours follow the class legend; "
                "black = ignore / void. Small images are enlarged with nearest-neighbour, large ones shrunk.")
        figures["grid_png"] = (_pil_png(img), note)
    else:
        figures["grid_png"] = (None, "No example images were given.")
    for key, (data, _) in figures.items():
        path = out / FILE_NAMES[key]
        if data is not None:
            written[key] = write_bytes_atomic(path, data)
        elif path.exists():
            path.unlink()  # stale figure from an earlier run in the same folder

    results = {
        "title": title,
        "generated": generated,
        "settings": settings or {},
        "env": env or {},
        "class_names": classes,
        "accuracy_measured": has_acc,
        "pareto_front": front,
        "rows": [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows_n],
        "skipped": skipped_n,
    }
    text = json.dumps(_jsonable(results), indent=2, ensure_ascii=False, allow_nan=False)
    written["results_json"] = write_bytes_atomic(out / FILE_NAMES["results_json"], (text + "\n").encode("utf-8"))

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(list(CSV_COLUMNS) + [f"iou_{c}" for c in classes])
    for r in rows_n:
        line = []
        for k in CSV_COLUMNS:
            v = r.get(k)
            if isinstance(v, str) or v is None:
                line.append("" if v is None else v)
            else:
                x = _num(v)
                line.append("" if x is None else (int(v) if isinstance(v, (int, np.integer)) else x))
        iou = r["iou"] or {}
        line += ["" if _num(iou.get(c)) is None else _num(iou.get(c)) for c in classes]
        writer.writerow(line)
    written["results_csv"] = write_bytes_atomic(out / FILE_NAMES["results_csv"], buf.getvalue().encode("utf-8"))

    blocks = _build_blocks(title=title, rows=rows_n, classes=classes, has_acc=has_acc, env=env or {},
                           settings=settings or {}, skipped=skipped_n, figures=figures, front=front,
                           generated=generated)
    written["report_md"] = write_bytes_atomic(out / FILE_NAMES["report_md"], _render_md(blocks).encode("utf-8"))
    images = {FILE_NAMES[k]: d for k, (d, _) in figures.items() if d is not None}
    page = _render_html(blocks, title, images)
    written["report_html"] = write_bytes_atomic(out / FILE_NAMES["report_html"], page.encode("utf-8"))
    return written
