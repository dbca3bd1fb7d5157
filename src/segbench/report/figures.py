"""Every matplotlib figure of segbench: the report's Pareto plot and bar charts, and training curves.

Figures are drawn on ``matplotlib.figure.Figure`` objects (no pyplot, no global backend switch) and
rendered to PNG bytes. matplotlib is imported where a figure is drawn, so importing the report stays light.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from segbench.data.io import write_bytes_atomic
from segbench.errors import UserError
from segbench.report.results import pareto_front
from segbench.report.values import fmt, num

__all__ = [
    "bars_png", "corruption_png", "model_colours", "pareto_png", "plot_curves", "read_metrics", "reliability_png",
    "trimap_png",
]


def fig_png(fig, **savefig) -> bytes:
    """Render a matplotlib Figure to PNG bytes (white background, cropped to its content by default)."""
    buf = io.BytesIO()
    options = {"dpi": fig.dpi, "bbox_inches": "tight", "facecolor": "white", **savefig}
    fig.savefig(buf, format="png", **options)
    return buf.getvalue()


def model_colours(labels: list[str]) -> dict[str, tuple]:
    """One matplotlib colour per model label, the same in every figure (tab10, or tab20 past 10 models)."""
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if len(labels) <= 10 else "tab20"]
    return {m: cmap(i % cmap.N) for i, m in enumerate(labels)}


def _pareto_title(settings: dict) -> str:
    sub = ", ".join(
        f"{k} {settings[k]}" for k in ("device", "input_size", "batch") if settings.get(k) not in (None, "")
    )
    return "mIoU vs latency" + (f" ({sub})" if sub else "")


def pareto_png(rows: list[dict], colours: dict, settings: dict) -> tuple[bytes | None, str, list[str]]:
    """Draw ``pareto.png``: mIoU (%) against median latency (ms), the Pareto front as a dashed step line.

    Args:
        rows: Normalised result rows with a display label under ``_label``.
        colours: Label -> matplotlib colour.
        settings: Run settings; ``device``, ``input_size`` and ``batch`` are quoted in the title.

    Returns:
        PNG bytes (None when no model has both an mIoU and a latency), the note for the report, and the
        labels of the models on the front, fastest first.
    """
    with_miou = [r for r in rows if num(r["miou"]) is not None]
    if not with_miou:
        note = "No model has an mIoU (no labels: accuracy not measured), so there is no accuracy-vs-latency plot."
        return None, note, []
    pts = [r for r in with_miou if num(r["latency_ms_p50"]) is not None]
    if not pts:
        return None, "No model has a measured latency, so there is no accuracy-vs-latency plot.", []
    from matplotlib.figure import Figure

    xs = [num(r["latency_ms_p50"]) for r in pts]
    ys = [num(r["miou"]) * 100 for r in pts]
    front = pareto_front(list(zip(xs, ys)))
    on_front = set(front)

    fig = Figure(figsize=(7.0, 4.8), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    ax.grid(True, color="#dddddd", linewidth=0.8)
    ax.set_axisbelow(True)
    if len(front) > 1:
        ax.step([xs[i] for i in front], [ys[i] for i in front], where="post", color="#444444", linewidth=1.5,
                linestyle="--", zorder=2, label="Pareto front (no model is both faster and more accurate)")
    _interval_bars(ax, pts, xs, ys, colours)
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
    ax.set_title(_pareto_title(settings), fontsize=11)
    ax.legend(loc="lower right", fontsize=8, frameon=True)
    fig.tight_layout()
    names = [pts[i]["_label"] for i in front]
    missing = [r["_label"] for r in with_miou if num(r["latency_ms_p50"]) is None]
    note = "Up and to the left is better; outlined points joined by the dashed step line form the Pareto front."
    if missing:
        note += " Not plotted (no latency): " + ", ".join(missing) + "."
    return fig_png(fig), note, names


def _interval_bars(ax, rows: list[dict], xs: list[float], ys: list[float], colours: dict) -> None:
    """95% interval bars: mIoU (bootstrap over images, ``miou_interval``) and latency (the median's,
    ``latency_ms_ci_low`` / ``_high``), where a row has them."""
    for x, y, r in zip(xs, ys, rows):
        lo, hi = (r.get("miou_interval") or [None, None])[:2]
        xlo, xhi = num(r.get("latency_ms_ci_low")), num(r.get("latency_ms_ci_high"))
        yerr = [[y - 100 * lo], [100 * hi - y]] if num(lo) is not None and num(hi) is not None else None
        xerr = [[max(x - xlo, 0)], [max(xhi - x, 0)]] if xlo is not None and xhi is not None else None
        if yerr or xerr:
            ax.errorbar([x], [y], yerr=yerr, xerr=xerr, fmt="none", ecolor=colours[r["_label"]], elinewidth=1.2,
                        capsize=3, alpha=0.8, zorder=2)


def trimap_png(series: list[tuple[str, dict]]) -> bytes:
    """mIoU (%) and pixel accuracy (%) inside trimap bands against the band width (px), one line per series.

    Args:
        series: ``(label, trimap dict)`` with ``width_px``, ``miou`` and ``pixel_accuracy`` lists (fractions).
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2), dpi=100)
    axes = fig.subplots(1, 2)
    for label, t in series:
        for ax, key in zip(axes, ("miou", "pixel_accuracy")):
            vals = [np.nan if v is None else 100 * v for v in t[key]]
            ax.plot(t["width_px"], vals, marker="o", markersize=2.5, label=label)
    for ax, title in zip(axes, ("mIoU in the band (%)", "Pixel accuracy in the band (%)")):
        ax.set(title=title, xlabel="band width around label boundaries (px)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig_png(fig)


def reliability_png(series: list[tuple[str, dict, float | None]]) -> bytes:
    """Reliability diagram: accuracy (%) against mean confidence (%) per bin, one line per series, the
    diagonal = perfect calibration.

    Args:
        series: ``(label, reliability dict with "accuracy" and "confidence" lists, ECE fraction or None)``.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.6, 5.2), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot([0, 100], [0, 100], color="#888888", linestyle="--", linewidth=1, label="perfectly calibrated")
    for label, rel, ece in series:
        pts = [(100 * c, 100 * a) for c, a in zip(rel["confidence"], rel["accuracy"]) if c is not None and a is not None]
        if pts:
            ax.plot(*zip(*pts), marker="o", markersize=3,
                    label=label + ("" if ece is None else f" (ECE {100 * ece:.1f}%)"))  # fmt: skip
    ax.set(xlim=(0, 100), ylim=(0, 100), xlabel="confidence: max softmax (%)", ylabel="accuracy (%)",
           title="Reliability (labelled pixels, equal-width bins)")  # fmt: skip
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig_png(fig)


def corruption_png(table: dict) -> bytes:
    """Heat map per model of mIoU (%) by corruption (rows) and severity (columns), from
    :func:`segbench.engine.robustness.corruption_sweep`'s table."""
    from matplotlib.figure import Figure

    names, corr, sev = list(table["models"]), table["corruptions"], table["severities"]
    cols = min(len(names), 3)
    rows = math.ceil(len(names) / cols)
    height = 0.5 + rows * (1.3 + 0.32 * len(corr))  # per row: two title lines, the severity axis, the cells
    fig = Figure(figsize=(1.2 + 0.75 * len(sev) * cols + 1.2 * cols, height), dpi=100)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, name in zip(axes, names):
        grid = np.array([table["models"][name]["miou"][c] for c in corr], dtype=float) * 100
        ax.imshow(grid, vmin=0, vmax=100, cmap="viridis", aspect="auto")
        for (i, j), v in np.ndenumerate(grid):
            ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=7, color="white" if v < 60 else "black")
        ax.set_xticks(range(len(sev)), [str(s) for s in sev], fontsize=8)
        ax.set_yticks(range(len(corr)), corr, fontsize=8)
        ax.set_title(f"{name}\nclean {100 * table['models'][name]['clean_miou']:.1f}", fontsize=9)
        ax.set_xlabel("severity", fontsize=8)
    for ax in axes[len(names):]:
        ax.set_visible(False)
    fig.suptitle("mIoU (%) under corruption", fontsize=11)
    fig.tight_layout()
    return fig_png(fig)


_BAR_METRICS = (
    ("latency_ms_p50", "Latency p50 (ms)"),
    ("size_mb", "Weights size (MB)"),
    ("memory_mib", "Peak memory (MiB)"),
)


def _bar_panel(ax, rows: list[dict], colours: dict, key: str, title: str) -> None:
    """One horizontal bar per row of ``key``; rows without a value say "n/a" or, if they failed, "error"."""
    vals = [num(r[key]) for r in rows]
    top = max([v for v in vals if v is not None], default=1.0) or 1.0
    for y, r, v in zip(np.arange(len(rows)), rows, vals):
        if v is None:
            failed = bool(r["error"])
            ax.text(top * 0.03, y, "error" if failed else "n/a", va="center", fontsize=8,
                    color="#c0392b" if failed else "#888888")
            continue
        ax.barh([y], [v], color=colours[r["_label"]], height=0.65)
        ax.text(v + top * 0.015, y, fmt(v), va="center", fontsize=8)
    ax.set_xlim(0, top * 1.22)
    ax.set_title(title, fontsize=10)
    ax.grid(True, axis="x", color="#e3e3e3")
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def bars_png(rows: list[dict], colours: dict) -> tuple[bytes | None, str]:
    """Draw ``bars.png``: median latency (ms), weights size (MB) and peak memory (MiB), one bar per model.

    Args:
        rows: Normalised result rows with a display label under ``_label``.
        colours: Label -> matplotlib colour.

    Returns:
        PNG bytes (None when none of the three was measured) and the note for the report.
    """
    if not rows or all(num(r[k]) is None for r in rows for k, _ in _BAR_METRICS):
        return None, "No latency, size or memory was measured, so there is no bar chart."
    from matplotlib.figure import Figure

    kinds = sorted({str(r["memory_kind"]) for r in rows if r.get("memory_kind") and num(r["memory_mib"]) is not None})
    n = len(rows)
    fig = Figure(figsize=(12.5, 1.3 + 0.42 * n), dpi=100)
    axes = fig.subplots(1, 3, sharey=True)
    for ax, (key, title) in zip(axes, _BAR_METRICS):
        if key == "memory_mib" and kinds:
            title += "\n" + ", ".join(kinds)
        _bar_panel(ax, rows, colours, key, title)
    axes[0].set_yticks(np.arange(n), [r["_label"] for r in rows], fontsize=9)
    axes[0].set_ylim(n - 0.5, -0.5)  # first model on top; rows without a bar keep their slot
    fig.suptitle("Speed, size and memory (shorter is better)", fontsize=11)
    fig.tight_layout()
    return fig_png(fig), "Shorter bars are better; n/a = not measured."


def _float(value: str | None) -> float | None:
    try:
        v = float(value) if value not in (None, "") else None
    except ValueError:
        return None
    return None if v is None or math.isnan(v) else v


def read_metrics(run_dir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Read ``run_dir/metrics.csv`` of a ``segbench train`` run.

    Args:
        run_dir: The run folder.

    Returns:
        ``{"loss": [(iter, loss), ...], "miou": [(iter, miou fraction), ...]}``, rows without a value
        left out.

    Raises:
        UserError: the folder or its ``metrics.csv`` is missing, or the file lacks ``iter``/``loss``/``miou``.
    """
    run = Path(run_dir)
    path = run / "metrics.csv"
    if not run.is_dir():
        raise UserError(f"{run}: no such run folder")
    if not path.is_file():
        raise UserError(f"{run}: no metrics.csv there (not a segbench train run folder)")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ("iter", "loss", "miou") if c not in (reader.fieldnames or [])]
        if missing:
            raise UserError(f"{path}: expected columns iter, loss and miou; missing {', '.join(missing)}")
        series: dict[str, list[tuple[int, float]]] = {"loss": [], "miou": []}
        for row in reader:
            it = _float(row["iter"])
            if it is None:
                continue
            for key, points in series.items():
                v = _float(row[key])
                if v is not None:
                    points.append((int(it), v))
    return series


def plot_curves(run_dirs: list[str | Path], output: str | Path, overwrite: bool = False) -> dict[str, dict]:
    """Plot validation mIoU (percent) and training loss against iteration for several runs into one PNG.

    Two panels, one line per run, labelled with the run folder's name (the whole path when two folders
    share a name). The PNG is written atomically.

    Args:
        run_dirs: Run folders of ``segbench train``, each holding ``metrics.csv``.
        output: The PNG file to write.
        overwrite: Replace an existing ``output``.

    Returns:
        ``{label: {"loss_points": n, "miou_points": m}}`` per run, in the order given.

    Raises:
        UserError: no runs, a folder without ``metrics.csv``, an existing output without ``overwrite``,
            or an output name not ending in ``.png``.
    """
    if not run_dirs:
        raise UserError("curves: give at least one run folder")
    output = Path(output)
    if output.suffix.lower() != ".png":
        raise UserError(f"{output}: the output must be a .png file")
    if output.exists() and not overwrite:
        raise UserError(f"{output}: exists; pass --overwrite to replace it")
    runs = [Path(r) for r in run_dirs]
    data = [read_metrics(r) for r in runs]
    names = [r.resolve().name for r in runs]
    labels = [n if names.count(n) == 1 else str(r) for n, r in zip(names, runs)]
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4.5))
    ax_miou, ax_loss = fig.subplots(1, 2)
    summary = {}
    for label, series in zip(labels, data):
        if series["miou"]:
            its, vals = zip(*series["miou"])
            ax_miou.plot(its, [v * 100 for v in vals], marker="o", markersize=3, label=label)
        if series["loss"]:
            its, vals = zip(*series["loss"])
            ax_loss.plot(its, vals, label=label)
        summary[label] = {"loss_points": len(series["loss"]), "miou_points": len(series["miou"])}
    ax_miou.set(title="validation mIoU", xlabel="iteration", ylabel="mIoU (%)")
    ax_loss.set(title="training loss", xlabel="iteration", ylabel="loss")
    for ax in (ax_miou, ax_loss):
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.tight_layout()
    write_bytes_atomic(output, fig_png(fig, dpi=110, bbox_inches=None, facecolor=fig.get_facecolor()))
    return summary
